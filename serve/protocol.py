"""Request bodies of the OpenAI API (Chat Completions, Completions, Responses, and /tokenize), every field
range-checked, so that bad input is a 400 naming the field, never a 500 or a hang. A field this server
does not implement is refused with a 400 rather than ignored; fields that mean nothing locally (user,
metadata, store, ...) are accepted."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator, model_validator

Number = Union[StrictInt, StrictFloat]
MAX_INT = 2**31 - 1
SEED = Annotated[StrictInt, Field(ge=0, le=2**64 - 1)]
MAX_STOPS, MAX_STOP_CHARS, MAX_CHOICES, MAX_TOP_LOGPROBS, MAX_LOGIT_BIAS = 16, 256, 16, 20, 1024
EFFORTS = ("none", "minimal", "low", "medium", "high")

# the sampling fields' ranges, one declaration for every API
MaxTokens = Annotated[StrictInt, Field(ge=1, le=MAX_INT)]
Temperature = Annotated[Number, Field(ge=0, le=2)]
TopP = Annotated[Number, Field(gt=0, le=1)]
TopK = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
ThinkingBudget = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
TopLogprobs = Annotated[StrictInt, Field(ge=0, le=MAX_TOP_LOGPROBS)]


class StrictBody(BaseModel):
    """A request body (or part of one) that refuses fields it does not declare."""
    model_config = ConfigDict(extra="forbid")


class IgnoredFields(StrictBody):
    """Fields with no local meaning, accepted so that ordinary clients work unchanged."""
    user: Optional[StrictStr] = None
    metadata: Optional[dict[str, Any]] = None
    store: Optional[StrictBool] = None
    service_tier: Optional[StrictStr] = None
    safety_identifier: Optional[StrictStr] = None
    prompt_cache_key: Optional[StrictStr] = None
    parallel_tool_calls: Optional[StrictBool] = None
    tools: Optional[Annotated[list[Any], Field(max_length=0)]] = None  # tools are not supported: only empty
    tool_choice: Optional[Literal["none", "auto"]] = None


class TextPart(StrictBody):
    type: Literal["text"]
    text: StrictStr


class Message(StrictBody):
    role: Literal["system", "developer", "user", "assistant"]
    content: Optional[Union[StrictStr, list[TextPart]]] = None
    reasoning_content: Optional[StrictStr] = None  # accepted from clients that send it back; dropped
    reasoning: Optional[StrictStr] = None  # vLLM's and Ollama's name for the same
    name: Optional[StrictStr] = None
    refusal: Optional[StrictStr] = None
    annotations: Optional[list[Any]] = None
    audio: Optional[None] = None
    function_call: Optional[None] = None
    tool_calls: Optional[Annotated[list[Any], Field(max_length=0)]] = None

    @field_validator("content")
    @classmethod
    def _flatten(cls, value):
        if isinstance(value, list):
            return "".join(part.text for part in value)
        return value

    @model_validator(mode="after")
    def _content_required(self):
        if self.role != "assistant" and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        return self

    def text(self) -> str:
        return self.content or ""


class ChatStreamOptions(StrictBody):
    include_usage: StrictBool = False
    continuous_usage_stats: Optional[StrictBool] = None


class JSONSchemaFormat(StrictBody):
    name: Annotated[StrictStr, Field(min_length=1, max_length=64)] = "response"
    description: Optional[StrictStr] = None
    schema_: Optional[dict[str, Any]] = Field(default=None, alias="schema")
    strict: Optional[StrictBool] = None


class ResponseFormat(StrictBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: Optional[JSONSchemaFormat] = None

    @model_validator(mode="after")
    def _schema_given(self):
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format type json_schema needs a json_schema object ({name, schema})")
        return self

    def as_dict(self) -> dict:
        out: dict = {"type": self.type}
        if self.json_schema is not None:
            out["json_schema"] = {"name": self.json_schema.name, "schema": self.json_schema.schema_}
        return out


def _stop_list(value):
    if isinstance(value, str):
        if not value:
            raise ValueError("stop must not be empty")
        return [value]
    return value


class SamplingFields(IgnoredFields):
    model: Optional[StrictStr] = None
    max_tokens: Optional[MaxTokens] = None
    temperature: Optional[Temperature] = None
    top_p: Optional[TopP] = None
    top_k: Optional[TopK] = None
    seed: Optional[SEED] = None
    stop: Optional[Union[Annotated[StrictStr, Field(max_length=MAX_STOP_CHARS)],
                         Annotated[list[Annotated[StrictStr, Field(min_length=1, max_length=MAX_STOP_CHARS)]],
                                   Field(max_length=MAX_STOPS)]]] = None
    stream: StrictBool = False
    stream_options: Optional[ChatStreamOptions] = None
    n: Annotated[StrictInt, Field(ge=1, le=MAX_CHOICES)] = 1
    presence_penalty: Optional[Annotated[Number, Field(ge=-2, le=2)]] = None
    frequency_penalty: Optional[Annotated[Number, Field(ge=-2, le=2)]] = None
    repetition_penalty: Optional[Annotated[Number, Field(gt=0, le=10)]] = None  # vLLM's name
    repeat_penalty: Optional[Annotated[Number, Field(gt=0, le=10)]] = None  # llama-server's name
    repeat_last_n: Optional[Annotated[StrictInt, Field(ge=-1, le=MAX_INT)]] = None
    logit_bias: Optional[Annotated[dict[StrictStr, Annotated[Number, Field(ge=-100, le=100)]],
                                   Field(max_length=MAX_LOGIT_BIAS)]] = None
    response_format: Optional[ResponseFormat] = None
    min_tokens: Optional[Annotated[StrictInt, Field(ge=0, le=MAX_INT)]] = None  # vLLM's
    ignore_eos: StrictBool = False  # vLLM's and llama-server's: generate max_tokens whatever the model ends with
    reasoning_loop_guard: StrictBool = True  # close a thinking that repeats itself and let the model answer

    _check_stop = field_validator("stop")(classmethod(lambda cls, v: _stop_list(v)))

    @field_validator("logit_bias")
    @classmethod
    def _bias_keys(cls, value):
        for key in value or {}:
            if not key.isdigit() or len(key) > 10:
                raise ValueError(f"logit_bias keys are token ids (digits), got {key[:20]!r}")
        return value

    @model_validator(mode="after")
    def _one_repeat_penalty(self):
        if self.repetition_penalty is not None and self.repeat_penalty is not None:
            raise ValueError("send repetition_penalty or repeat_penalty, not both")
        return self

    @property
    def repeat(self) -> Optional[float]:
        return self.repetition_penalty if self.repetition_penalty is not None else self.repeat_penalty


class ChatTemplateKwargs(BaseModel):
    model_config = ConfigDict(extra="allow")  # passed to the chat template as they are
    enable_thinking: Optional[StrictBool] = None


class ChatCompletionRequest(SamplingFields):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Optional[MaxTokens] = None
    reasoning_format: Literal["auto", "deepseek", "none"] = "auto"
    reasoning_effort: Optional[Literal[EFFORTS]] = None
    thinking_budget_tokens: Optional[ThinkingBudget] = None
    budget_forcing_waits: Annotated[StrictInt, Field(ge=0, le=16)] = 0  # s1: "Wait" instead of an early </think>
    chat_template_kwargs: Optional[ChatTemplateKwargs] = None
    logprobs: Optional[StrictBool] = None
    top_logprobs: Optional[TopLogprobs] = None

    @field_validator("messages")
    @classmethod
    def _has_user_turn(cls, value: list[Message]):
        if not any(m.role == "user" for m in value):
            raise ValueError("messages need at least one user message")
        return value

    @model_validator(mode="after")
    def _logprobs_pair(self):
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    @property
    def thinking(self) -> bool:
        if self.reasoning_effort == "none":
            return False
        kwargs = self.chat_template_kwargs
        return not (kwargs is not None and kwargs.enable_thinking is False)

    @property
    def logprobs_n(self) -> Optional[int]:
        return (self.top_logprobs or 0) if self.logprobs else None


TokenIds = Annotated[list[Annotated[StrictInt, Field(ge=0, le=MAX_INT)]], Field(min_length=1)]


class CompletionRequest(SamplingFields):
    prompt: Union[Annotated[StrictStr, Field(min_length=1)], TokenIds,
                  Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(min_length=1, max_length=MAX_CHOICES)],
                  Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_CHOICES)]]
    logprobs: Optional[TopLogprobs] = None

    @model_validator(mode="after")
    def _choices_bounded(self):
        if len(self.prompts()) * self.n > MAX_CHOICES:
            raise ValueError(f"prompts x n is {len(self.prompts()) * self.n}; at most {MAX_CHOICES} choices per request")
        return self

    def prompts(self) -> list[Union[str, list[int]]]:
        """Each prompt: text, or token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [p]
        return list(p)


class TokenizeRequest(StrictBody):
    """POST /tokenize, as vLLM (`prompt`) and llama-server (`content`) take it: the token ids a text prompt
    of /v1/completions becomes (special tokens written in the text are parsed; nothing is added)."""
    model: Optional[StrictStr] = None
    prompt: Optional[StrictStr] = None
    content: Optional[StrictStr] = None
    add_special_tokens: Optional[Literal[False]] = None  # vLLM's; this server adds no BOS to a text prompt
    add_special: Optional[Literal[False]] = None  # llama-server's

    @model_validator(mode="after")
    def _one_text(self):
        if (self.prompt is None) == (self.content is None):
            raise ValueError("send the text as `prompt` (vLLM) or `content` (llama-server), one of them")
        return self

    @property
    def text(self) -> str:
        return self.prompt if self.prompt is not None else self.content


# -- the Responses API ----------------------------------------------------------------------------
class ReasoningConfig(StrictBody):
    effort: Optional[Literal[EFFORTS]] = None
    summary: Optional[Literal["auto", "concise", "detailed"]] = None  # the full text is always returned
    generate_summary: Optional[Literal["auto", "concise", "detailed"]] = None


class TextFormat(StrictBody):
    type: Literal["text", "json_object", "json_schema"]
    name: Optional[StrictStr] = None
    description: Optional[StrictStr] = None
    schema_: Optional[dict[str, Any]] = Field(default=None, alias="schema")
    strict: Optional[StrictBool] = None


class TextConfig(StrictBody):
    format: Optional[TextFormat] = None
    verbosity: Optional[Literal["medium"]] = None  # only the default: the model's length is its own


class ResponsesStreamOptions(StrictBody):
    include_obfuscation: Optional[StrictBool] = None


class ResponsesRequest(IgnoredFields):
    model: Optional[StrictStr] = None
    input: Union[Annotated[StrictStr, Field(min_length=1)], Annotated[list[dict[str, Any]], Field(min_length=1)]]
    instructions: Optional[StrictStr] = None
    max_output_tokens: Optional[MaxTokens] = None
    temperature: Optional[Temperature] = None
    top_p: Optional[TopP] = None
    top_k: Optional[TopK] = None
    seed: Optional[SEED] = None
    stream: StrictBool = False
    stream_options: Optional[ResponsesStreamOptions] = None
    reasoning: Optional[ReasoningConfig] = None
    text: Optional[TextConfig] = None
    top_logprobs: Optional[TopLogprobs] = None
    include: Optional[list[Literal["message.output_text.logprobs"]]] = None
    truncation: Optional[Literal["disabled"]] = None
    background: Optional[Literal[False]] = None
    thinking_budget_tokens: Optional[ThinkingBudget] = None
    reasoning_loop_guard: StrictBool = True  # close a thinking that repeats itself and let the model answer
