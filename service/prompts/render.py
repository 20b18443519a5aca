"""How a canonical request becomes the prompt text of a text-in schema (tgi, lmi, neuron, text2text).

- An endpoint with a `prompt_template` (a fine-tuned instruction format) gets it filled:
  chat messages → `templates.instruction_from_messages` (last user message is the instruction,
  system message and earlier turns are the context); a completions prompt or the native API's
  `inputs` is the instruction and the native API's `context` (or nothing) is the context.
- Otherwise chat messages are rendered with the endpoint's `chat_template` (`plain` when none).
- Otherwise (completions, native generate) the prompt is sent as given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from service.canonical import GenerationRequest, ImagePart, Message
from service.prompts.templates import instruction_from_messages, render_chat, render_instruction


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """How messages become text for text-in schemas: the endpoint's chat and instruction templates."""

    chat_template: str | None = None
    prompt_template: str | None = None


def render_text(req: GenerationRequest, spec: PromptSpec) -> str:
    if spec.prompt_template is not None:
        if req.messages is not None:
            instruction, context = instruction_from_messages(req.messages)
        else:
            instruction, context = req.prompt or "", req.context or ""
        return render_instruction(spec.prompt_template, instruction, context)
    if req.messages is not None:
        return render_chat(spec.chat_template or "plain", req.messages)
    return req.prompt or ""


def markdown_images(req: GenerationRequest) -> GenerationRequest:
    """Images written into the message text as markdown `![](data:...)`, where TGI's generate route reads them
    (openai-surface.md 4); text parts stay in their places."""
    return replace(req, messages=tuple(_markdown(m) for m in req.messages or ()))


def _markdown(m: Message) -> Message:
    if not m.parts:
        return m
    text = "".join(f"![]({p.url})" if isinstance(p, ImagePart) else p.text for p in m.parts)
    return replace(m, content=text, parts=())
