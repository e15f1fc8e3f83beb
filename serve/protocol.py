"""Request bodies of the OpenAI API, checked strictly enough that bad input is a 400, not a 500."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator, model_validator

Number = Union[StrictInt, StrictFloat]


class Lenient(BaseModel):
    # Clients send fields we do not use (user, logprobs=false, ...): ignore them, as OpenAI-compatible
    # servers do; every field we do read is checked.
    model_config = ConfigDict(extra="ignore")


class TextPart(Lenient):
    type: Literal["text"]
    text: StrictStr


class Message(Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: Optional[Union[StrictStr, list[TextPart]]] = None
    reasoning_content: Optional[StrictStr] = None  # accepted from clients that send it back; dropped
    name: Optional[StrictStr] = None

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


class StreamOptions(Lenient):
    include_usage: StrictBool = False


class SamplingFields(Lenient):
    model: Optional[StrictStr] = None
    max_tokens: Optional[Annotated[StrictInt, Field(ge=1)]] = None
    temperature: Optional[Annotated[Number, Field(ge=0, le=2)]] = None
    top_p: Optional[Annotated[Number, Field(gt=0, le=1)]] = None
    top_k: Optional[Annotated[StrictInt, Field(ge=0)]] = None
    seed: Optional[StrictInt] = None
    stop: Optional[Union[StrictStr, Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(max_length=16)]]] = None
    stream: StrictBool = False
    stream_options: Optional[StreamOptions] = None
    n: Annotated[StrictInt, Field(ge=1, le=1)] = 1
    presence_penalty: Optional[Annotated[Number, Field(ge=-2, le=2)]] = None
    frequency_penalty: Optional[Annotated[Number, Field(ge=-2, le=2)]] = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value):
        if isinstance(value, str):
            if not value:
                raise ValueError("stop must not be empty")
            return [value]
        return value


class ChatCompletionRequest(SamplingFields):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Optional[Annotated[StrictInt, Field(ge=1)]] = None
    reasoning_format: Literal["auto", "deepseek", "none"] = "auto"
    reasoning_effort: Optional[Literal["low", "medium", "high"]] = None
    thinking_budget_tokens: Optional[Annotated[StrictInt, Field(ge=0)]] = None
    budget_forcing_waits: Annotated[StrictInt, Field(ge=0, le=16)] = 0  # s1: "Wait" instead of an early </think>
    chat_template_kwargs: Optional[dict[str, Any]] = None

    @field_validator("messages")
    @classmethod
    def _has_user_turn(cls, value: list[Message]):
        if not any(m.role == "user" for m in value):
            raise ValueError("messages need at least one user message")
        return value


class CompletionRequest(SamplingFields):
    prompt: Union[Annotated[StrictStr, Field(min_length=1)], Annotated[list[StrictStr], Field(min_length=1, max_length=1)]]

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]
