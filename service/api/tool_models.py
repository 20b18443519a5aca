"""Wire models for tool calling and structured output: `tools`, `tool_choice`, `response_format`, and the tool
calls an assistant message carries in a conversation's history (openai-surface.md 1.1, 2.1).

Strict like every wire model: a tool type other than `function` (`custom`, `allowed_tools`) is a 400 naming the
field. JSON Schemas are checked against the draft 2020-12 meta-schema here, at the edge, so an invalid schema is
the client's 400 naming the field, never a container's 422 or a gateway 5xx later.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.canonical import ResponseFormat, Tool, ToolCall, ToolChoice
from service.errors import InvalidParam
from service.pipeline.schemas import check_schema

#: OpenAI's limits: function names, and tools per request
NAME = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_TOOLS = 128
MAX_DESCRIPTION = 8192
MAX_CALL_ID = 256


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


FunctionName = Annotated[str, Field(pattern=NAME)]


class FunctionSpec(_Strict):
    name: FunctionName
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec

    def canonical(self, position: int) -> Tool:
        f = self.function
        # a function's arguments are a JSON object: a schema that does not say so is taken as saying it
        schema = {"type": "object", **(f.parameters if f.parameters is not None else {"properties": {}})}
        why = check_schema(schema)
        if why is None and schema["type"] != "object":
            why = "the parameters of a function must be a JSON Schema of type object"
        if why is not None:
            raise InvalidParam(f"`tools[{position}].function.parameters` of function '{f.name}': {why}",
                               param=f"tools[{position}].function.parameters")
        return Tool(f.name, f.description, schema, bool(f.strict))


class NamedFunction(_Strict):
    name: FunctionName


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


ToolChoiceWire = Literal["none", "auto", "required"] | NamedToolChoice


def tool_choice(choice: ToolChoiceWire | None, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if choice is None:
        return None
    if not tools and choice != "none":
        raise InvalidParam("`tool_choice` is only allowed when `tools` are given: add the tools or remove it",
                           param="tool_choice")
    if isinstance(choice, str):
        return ToolChoice(choice)
    name = choice.function.name
    if name not in {t.name for t in tools}:
        offered = ", ".join(t.name for t in tools[:10])
        raise InvalidParam(f"`tool_choice` names the function '{name}', which is not among `tools` ({offered}): "
                           "name an offered function", param="tool_choice")
    return ToolChoice("function", name)


class CalledFunction(_Strict):
    name: FunctionName
    arguments: str


class ToolCallWire(_Strict):
    """A call in an assistant message of the history (what a previous answer returned)."""

    id: Annotated[str, Field(min_length=1, max_length=MAX_CALL_ID)]
    type: Literal["function"]
    function: CalledFunction

    def canonical(self) -> ToolCall:
        return ToolCall(self.id, self.function.name, self.function.arguments)


class JsonSchemaSpec(_Strict):
    name: FunctionName
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


class JsonSchemaFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec

    @model_validator(mode="after")
    def _schema(self) -> JsonSchemaFormat:
        schema = self.json_schema.schema_
        why = check_schema(schema) if schema is not None else None
        if why is not None:
            raise InvalidParam(f"`response_format.json_schema.schema`: {why}",
                               param="response_format.json_schema.schema")
        return self


ResponseFormatWire = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


def response_format(wire: ResponseFormatWire | None) -> ResponseFormat | None:
    if wire is None or isinstance(wire, TextFormat):
        return None
    if isinstance(wire, JsonObjectFormat):
        return ResponseFormat("json_object")
    spec = wire.json_schema
    if spec.schema_ is None:  # OpenAI: a json_schema without a schema is any JSON object
        return ResponseFormat("json_object", name=spec.name)
    return ResponseFormat("json_schema", spec.schema_, spec.name, bool(spec.strict))


def tools_of(specs: list[ToolSpec] | None) -> tuple[Tool, ...]:
    if not specs:
        return ()
    if len(specs) > MAX_TOOLS:
        raise InvalidParam(f"{len(specs)} tools is over the limit of {MAX_TOOLS}: send fewer", param="tools")
    tools = tuple(spec.canonical(i) for i, spec in enumerate(specs))
    names = [t.name for t in tools]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise InvalidParam(f"`tools` names the function '{duplicate}' twice: give each function one entry",
                           param="tools")
    return tools
