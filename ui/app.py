"""`r1-distill chat`: a Gradio chat app that shows the thinking apart from the answer.

It talks to any OpenAI-compatible endpoint (our serve/, llama-server, vLLM, Ollama, DeepSeek's API),
reading `reasoning_content`, `reasoning` or raw `<think>` text alike. With `--model FILE.gguf` it
starts r1-distill's own server in this process on a free local port and talks to that.

Everything a person changes lives in their own browser session: the conversation, the settings and
the model picker's value (an input of every turn, checked against what this app offers); saved
conversations are filed under their browser's own random id, or with --auth under the logged-in
user (found from any browser they log in from; `history.owner()`, ui/history.py). Only the local
servers are shared.
"""

from __future__ import annotations

import socket
import webbrowser
from dataclasses import dataclass, field
from typing import Optional

import gradio as gr

from r1_distill.errors import UserError

from . import history as saved_chats
from .access import is_public
from .chat import ChatSettings, mark_stopped
from .handlers import ChatHandlers
from .layout import ChatLayout, chat_layout
from .models import ModelChoices
from .window import open_window

TITLE = "r1-distill chat"


@dataclass
class ChatConfig:
    endpoints: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # .gguf files served in-process; the first starts at launch
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    open_browser: bool = True
    window: bool = False
    auth: Optional[list[tuple[str, str]]] = None
    api_key: str = "none"
    settings: ChatSettings = field(default_factory=ChatSettings)
    search_dirs: list[str] = field(default_factory=lambda: ["runs", "."])

    @property
    def public(self) -> bool:
        return is_public(self.host, self.share)


def build_app(config: ChatConfig):
    choices = ModelChoices(config.endpoints, config.models, config.public, config.search_dirs)
    store = saved_chats.ConversationStore(saved_chats.chat_data_dir() / "conversations")
    if config.auth:
        saved_chats.user_secret()  # made now, before two first requests could race to make it
    if config.models:
        choices.endpoint_for(config.models[0])  # load it now, not on the first message
    handlers = ChatHandlers(choices, store, config.api_key)
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        ui = chat_layout(choices, config.settings)
        _wire_turns(ui, handlers)
        _wire_conversations(demo, ui, handlers)
    return demo, choices


def _wire_turns(ui: ChatLayout, h: ChatHandlers) -> None:
    settings = [ui.temperature, ui.top_p, ui.max_tokens, ui.budget]
    saving = dict(fn=h.save, inputs=[ui.conversation_id, ui.chatbot, ui.browser],
                  outputs=[ui.conversation_id, ui.conversations], api_name=False, queue=False)
    turns = [
        ui.send.click(h.chat, [ui.box, ui.chatbot, *settings, ui.model], [ui.chatbot, ui.box], api_name="chat"),
        ui.box.submit(h.chat, [ui.box, ui.chatbot, *settings, ui.model], [ui.chatbot, ui.box], api_name=False),
        ui.retry.click(h.retry_last, [ui.chatbot, *settings, ui.model], [ui.chatbot, ui.box], api_name=False),
        ui.chatbot.retry(h.retry_last, [ui.chatbot, *settings, ui.model], [ui.chatbot, ui.box], api_name=False),
        ui.chatbot.option_select(h.regenerate, [ui.chatbot, ui.temperature, ui.top_p, ui.max_tokens, ui.model],
                                 [ui.chatbot, ui.box], api_name=False),
    ]
    for turn in turns:
        turn.then(**saving)
    ui.stop.click(None, None, None, cancels=turns, api_name=False).then(
        mark_stopped, ui.chatbot, ui.chatbot, api_name=False).then(**saving)
    ui.model.change(h.switch_model, ui.model, ui.model, api_name=False)


def _wire_conversations(demo, ui: ChatLayout, h: ChatHandlers) -> None:
    for starts_over in (ui.clear, ui.new_chat):
        starts_over.click(lambda: ([], "", None, gr.update(value=None), ""), None,
                          [ui.chatbot, ui.box, ui.conversation_id, ui.conversations, ui.title], api_name=False,
                          queue=False)
    ui.chatbot.clear(lambda: (None, gr.update(value=None), ""), None, [ui.conversation_id, ui.conversations, ui.title],
                     api_name=False, queue=False)  # the trash icon: the next turn starts a new saved conversation
    demo.load(h.start_session, ui.browser, [ui.browser, ui.conversations], api_name=False, queue=False)
    ui.conversations.input(h.reopen, [ui.conversations, ui.browser],
                           [ui.conversation_id, ui.chatbot, ui.title, ui.conversations], api_name=False, queue=False)
    ui.rename.click(h.rename_current, [ui.conversation_id, ui.title, ui.browser], ui.conversations, api_name=False,
                    queue=False)
    ui.delete.click(h.delete_current, [ui.conversation_id, ui.browser],
                    [ui.conversation_id, ui.conversations, ui.chatbot, ui.title], api_name=False, queue=False)
    ui.export_md.click(lambda history: h.export(history, "md"), ui.chatbot, ui.download, api_name=False)
    ui.export_json.click(lambda history: h.export(history, "json"), ui.chatbot, ui.download, api_name=False)


def launch(config: ChatConfig) -> None:
    check_host(config.host)  # before a model is loaded
    demo, choices = build_app(config)
    demo.queue(default_concurrency_limit=4)
    options = dict(server_name=config.host, server_port=config.port, share=config.share, auth=config.auth,
                   auth_message="r1-distill chat: sign in" if config.auth else None, show_error=True, quiet=True)
    try:
        try:
            demo.launch(inbrowser=config.open_browser and not config.window, prevent_thread_lock=True, **options)
        except OSError:
            raise UserError(f"port {config.port} is in use on {config.host}: pass --port with a free one "
                            "(or stop what listens there)") from None
        print(f"Chat app on http://{config.host}:{config.port}", flush=True)
        if config.public and not config.auth:
            print("Anyone who can reach this address can use the model: add --auth USER:PASSWORD to ask for a login.",
                  flush=True)
        if config.window:
            url = demo.local_url
            reason = open_window(url, TITLE, saved_chats.chat_data_dir() / "window")
            if reason is None:  # the window was closed: so is the app
                demo.close()
                return
            where = "opening it in the browser" if config.open_browser else "open it in a browser"
            print(f"No desktop window: {reason}. The app is at {url}: {where}.", flush=True)
            if config.open_browser:
                webbrowser.open(url)
        demo.block_thread()
    finally:
        choices.pool.stop_all()


def check_host(host: str) -> None:
    """UserError unless the app can listen on `host` (an address of this machine)."""
    try:
        family = socket.getaddrinfo(host, None)[0][0]
        with socket.socket(family) as s:
            s.bind((host, 0))
    except OSError:
        raise UserError(f"--host {host} is not an address of this machine: pass --host 127.0.0.1 (this machine "
                        "only) or --host 0.0.0.0 (every network it is on)") from None
