"""How chat messages become prompt text for text-in schemas, and fine-tune instruction templates.

Chat templates (`CHAT_TEMPLATES`, looked up by the endpoint's `chat_template` name):

- `llama2`: Meta's Llama 2 chat layout. Consecutive messages of one role are merged into one (contents
  joined by a blank line); an optional system message comes first and is folded into the first user message;
  after it, user and assistant must alternate, starting and ending with user.
  `<s>`/`</s>` are written as text (the BOS/EOS tokens in text form, as TGI and LMI expect).
- `llama3`: Meta's Llama 3 layout: `<|begin_of_text|>`, one header + content + `<|eot_id|>` per message,
  then an open assistant header so the model writes the answer.
- `plain`: a fallback for models without a known format: "System: ...\\n\\nUser: ...\\n\\nAssistant:".

Messages that contain a template's own control markers are rejected (as Meta's reference code does for
Llama 2): otherwise a user could forge turns, for example a fake system message.

Instruction templates (an endpoint's `prompt_template`) are Python format strings with `{instruction}`
and, optionally, `{context}`; see `render_instruction` and `instruction_from_messages`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from string import Formatter

from service.canonical import Message
from service.errors import InvalidParam

ChatTemplate = Callable[[Sequence[Message]], str]

_LLAMA2_MARKERS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")
_LLAMA3_MARKERS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                   "<|end_of_text|>")


def _reject(why: str) -> InvalidParam:
    return InvalidParam(why, param="messages")


# One scan of each message for any marker (this runs on every chat request), instead of one per marker.
_ANY_MARKER: dict[tuple[str, ...], re.Pattern[str]] = {
    markers: re.compile("|".join(map(re.escape, markers))) for markers in (_LLAMA2_MARKERS, _LLAMA3_MARKERS)}


def _check_markers(messages: Sequence[Message], markers: tuple[str, ...], template: str) -> None:
    any_marker = _ANY_MARKER[markers]
    for i, m in enumerate(messages):
        if any_marker.search(m.content):
            found = [marker for marker in markers if marker in m.content]
            raise _reject(f"messages[{i}] contains {', '.join(found)}, which the {template} chat format uses as "
                          f"control markers: remove them from the message")


def _require_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise _reject("messages is empty: send at least one user message")


# --- llama2 -----------------------------------------------------------------------------------------

def merge_runs(messages: Sequence[Message]) -> list[Message]:
    """Consecutive messages of one role as one message, their contents separated by a blank line: Llama 2's
    format has one slot per turn, and clients (LangChain's standard tests among them) send runs of system, user
    or assistant messages."""
    merged: list[Message] = []
    for m in messages:
        if merged and merged[-1].role == m.role:
            merged[-1] = Message(m.role, f"{merged[-1].content.strip()}\n\n{m.content.strip()}")
        else:
            merged.append(m)
    return merged


def _llama2_turns(messages: Sequence[Message]) -> list[Message]:
    """Merge runs of one role, fold the optional leading system message into the first user message and check
    the alternation."""
    _require_messages(messages)
    _check_markers(messages, _LLAMA2_MARKERS, "llama2")
    turns = merge_runs(messages)
    if turns[0].role == "system":
        if len(turns) < 2 or turns[1].role != "user":
            raise _reject("the llama2 chat format needs a user message right after the system message: add one")
        folded = f"<<SYS>>\n{turns[0].content}\n<</SYS>>\n\n{turns[1].content}"
        turns = [Message("user", folded), *turns[2:]]
    for i, m in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if m.role != expected:
            raise _reject(f"the llama2 chat format takes an optional system message first, then user and "
                          f"assistant messages alternating; turn {i + 1} is '{m.role}' where '{expected}' "
                          f"belongs: reorder the messages")
    if turns[-1].role != "user":
        raise _reject("the llama2 chat format must end with a user message: remove the trailing assistant message")
    return turns


def llama2(messages: Sequence[Message]) -> str:
    turns = _llama2_turns(messages)
    parts = [f"<s>[INST] {user.content.strip()} [/INST] {answer.content.strip()} </s>"
             for user, answer in zip(turns[:-1:2], turns[1::2], strict=True)]
    parts.append(f"<s>[INST] {turns[-1].content.strip()} [/INST]")
    return "".join(parts)


# --- llama3 -----------------------------------------------------------------------------------------

def _llama3_header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


def llama3(messages: Sequence[Message]) -> str:
    _require_messages(messages)
    _check_markers(messages, _LLAMA3_MARKERS, "llama3")
    body = "".join(f"{_llama3_header(m.role)}{m.content.strip()}<|eot_id|>" for m in messages)
    return f"<|begin_of_text|>{body}{_llama3_header('assistant')}"


# --- plain ------------------------------------------------------------------------------------------

def plain(messages: Sequence[Message]) -> str:
    """"Role: content" blocks separated by blank lines, ending with an open "Assistant:" turn."""
    _require_messages(messages)
    blocks = [f"{m.role.capitalize()}: {m.content.strip()}" for m in messages]
    return "\n\n".join([*blocks, "Assistant:"])


CHAT_TEMPLATES: dict[str, ChatTemplate] = {
    "llama2": llama2,
    "llama3": llama3,
    "plain": plain,
}


def render_chat(name: str, messages: Sequence[Message]) -> str:
    try:
        template = CHAT_TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown chat template {name!r}; known templates: {', '.join(sorted(CHAT_TEMPLATES))}") \
            from None
    return template(messages)


# --- fine-tune instruction templates ----------------------------------------------------------------

#: The Dolly-style instruction format (JumpStart's default for instruction fine-tuning on Dolly data).
#: One template serves every request, with or without context: JumpStart fills the same template for
#: every training record, so records without context were trained with an empty "### Input:" section,
#: and switching to a no-input variant at inference would show the model a layout it was not tuned on.
#: A model tuned on a different layout sets its own `prompt_template`.
DOLLY_TEMPLATE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{context}\n\n### Response:\n\n"
)


_TEMPLATE_FIELDS = ("instruction", "context")


def check_prompt_template(template: str) -> None:
    """Raise ValueError unless `template` has `{instruction}`, optionally `{context}`, and nothing else.

    Literal braces are written `{{` and `}}`. Conversions and format specs (`{instruction!r}`) are
    refused too: they are almost always a typo for a literal brace.
    """
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{exc}: write literal braces as {{{{ and }}}}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name in _TEMPLATE_FIELDS and (spec or conversion):
            raise ValueError(f"{{{name}}} takes no conversion or format spec (found "
                             f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''})")
        if name not in _TEMPLATE_FIELDS:
            raise ValueError(f"unknown placeholder {{{name}}}: only {{instruction}} and {{context}} are filled; "
                             f"write literal braces as {{{{ and }}}}")
    if "instruction" not in _fields(template):
        raise ValueError("must contain {instruction}, where the user's instruction goes")


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


def render_instruction(template: str, instruction: str, context: str) -> str:
    """Fill `{instruction}` and `{context}` (`{{`/`}}` are literal braces; config load checked the fields).

    A template without a `{context}` slot still gets the context: it is put before the instruction,
    separated by a blank line, because dropping a system message silently would change the answer
    without telling anyone.
    """
    if context and "context" not in _fields(template):
        instruction = f"{context}\n\n{instruction}"
    return template.format(instruction=instruction, context=context)


def instruction_from_messages(messages: Sequence[Message]) -> tuple[str, str]:
    """Split chat messages into (instruction, context) for an instruction template.

    instruction: the content of the last user message.
    context: the system message contents first (one per line), then every other message except that
    last user message, in order, as "role: content" lines; "" when there are none.
    """
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last_user is None:
        raise _reject("an instruction-tuned endpoint needs a user message to use as the instruction: add one")
    system = [m.content for m in messages if m.role == "system"]
    turns = [f"{m.role}: {m.content}" for i, m in enumerate(messages) if m.role != "system" and i != last_user]
    return messages[last_user].content, "\n".join([*system, *turns])
