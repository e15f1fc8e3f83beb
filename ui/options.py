"""`r1-distill chat`'s options: what a person passes on the command line, turned into the app's ChatConfig."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from r1_distill.errors import UserError
from r1_distill.options import option


@dataclass
class ChatOptions:
    model: Optional[list[str]] = option(None, metavar="FILE.gguf", help="A .gguf to serve in-process (repeat to offer several); FILE.gguf:draft=DRAFT.gguf serves it with a "
                                       "draft model (speculative decoding).")
    endpoint: Optional[list[str]] = option(None, metavar="URL",
                                           help="An OpenAI-compatible base URL, http://host:port/v1 (repeatable).")
    host: str = option("127.0.0.1", help="Bind address of the app.")
    port: int = option(7860, help="Port of the app.")
    api_key_env: Optional[str] = option(None, help="Environment variable with the endpoint's key.")
    no_browser: bool = option(False, help="Do not open a browser.")
    share: bool = option(False, help="Create a public Gradio share link (off by default).")
    auth: Optional[str] = option(None, metavar="USER:PASSWORD|FILE",
                                 help="Ask for a login: USER:PASSWORD, or a file of USER:PASSWORD lines.")
    window: bool = option(False, help="Open in a desktop window (pywebview); the browser if none can open.")
    max_tokens: int = option(2048, help="Default max tokens per reply.")
    thinking_budget: int = option(0, help="Default thinking budget in tokens (0: none).")

    def chat_config(self):
        from .access import parse_auth
        from .app import ChatConfig
        from .chat import ChatSettings

        if not self.model and not self.endpoint:
            raise UserError("pass --model FILE.gguf or --endpoint URL (an OpenAI-compatible server)")
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else "none"
        if self.api_key_env and not key:
            raise UserError(f"${self.api_key_env} is not set")
        return ChatConfig(endpoints=self.endpoint or [], models=self.model or [], host=self.host, port=self.port,
                          share=self.share, open_browser=not self.no_browser, window=self.window,
                          auth=parse_auth(self.auth), api_key=key,
                          settings=ChatSettings(max_tokens=self.max_tokens, thinking_budget=self.thinking_budget))
