"""Chat messages to a prompt with the GGUF's own chat template (the shipped R1 one when it has none),
and thinking switched off on request by closing it in the prompt (``<think>\\n\\n</think>\\n\\n``, as
Qwen3's ``enable_thinking: false`` does)."""

from __future__ import annotations

from jinja2.sandbox import ImmutableSandboxedEnvironment

from r1_distill.registry import read_template

EMPTY_THINKING_CLOSE = "\n\n</think>\n\n"


class TemplateError(ValueError):
    """The chat template refused these messages or failed on them (the server answers 400)."""


def _raise_template_error(message: str):
    raise TemplateError(f"the chat template rejected the messages: {message}")


class ChatFormatter:
    def __init__(self, engine):
        meta = engine.metadata
        self.template_text = meta.get("tokenizer.chat_template") or read_template("r1-distill")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        self.template = env.from_string(self.template_text)

        def token(key: str) -> str:
            value = meta.get(key)
            return engine.token_text(int(value)) if value not in (None, "") else ""

        self.bos, self.eos = token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")

    def render(self, messages: list[dict], **kwargs) -> str:
        return self.template.render(messages=messages, bos_token=self.bos, eos_token=self.eos,
                                    add_generation_prompt=True, **kwargs)

    def prompt(self, messages: list[dict], *, thinking: bool = True, template_kwargs: dict | None = None) -> tuple[str, bool]:
        """(prompt, whether the prompt leaves the thinking open for the model)."""
        kwargs = dict(template_kwargs or {})
        if not thinking:
            kwargs.setdefault("enable_thinking", False)
        try:
            text = self.render(messages, **kwargs)
        except TemplateError:
            raise
        except Exception as exc:
            raise TemplateError(f"the chat template failed on these messages: {exc}") from None
        opened = text.rstrip().endswith("<think>")
        if opened and not thinking:
            text = text.rstrip() + EMPTY_THINKING_CLOSE
            opened = False
        return text, opened
