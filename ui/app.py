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
import tempfile
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import gradio as gr

from r1_distill.errors import UserError
from r1_distill.files import write_text_atomic

from . import history as saved_chats
from .access import is_public
from .chat import REGENERATE, ChatSettings, mark_stopped, message_text, note, respond
from .models import ModelChoices
from .window import open_window

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False},
         {"left": "\\(", "right": "\\)", "display": False}, {"left": "\\[", "right": "\\]", "display": True}]
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
    default_choice = choices.default
    exports = tempfile.TemporaryDirectory(prefix="r1-distill-chat-exports-")  # removed when the app exits

    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        browser = gr.BrowserState("", storage_key=saved_chats.STORAGE_KEY, secret=saved_chats.browser_secret())
        conversation_id = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=220):
                new_chat = gr.Button("New chat", size="sm", elem_id="new-chat")
                conversations = gr.Radio(choices=[], label="Saved conversations", elem_id="history")
                with gr.Accordion("Rename or delete", open=False, elem_id="manage"):
                    title = gr.Textbox(label="Title", elem_id="title", max_lines=1)
                    with gr.Row():
                        rename = gr.Button("Rename", size="sm", elem_id="rename")
                        delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete")
            with gr.Column(scale=4):
                gr.Markdown("### r1-distill chat: the thinking apart from the answer")
                chatbot = gr.Chatbot(label="Conversation", height=520, latex_delimiters=LATEX, elem_id="chat",
                                     buttons=["copy", "copy_all"], group_consecutive_messages=False)
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question (Enter to send)", show_label=False, scale=8,
                                     elem_id="prompt")
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    stop = gr.Button("Stop", scale=1, elem_id="stop")
                with gr.Row():
                    retry = gr.Button("Retry", size="sm", elem_id="retry")
                    clear = gr.Button("Clear", size="sm", elem_id="clear")
                    export_md = gr.Button("Export Markdown", size="sm")
                    export_json = gr.Button("Export JSON", size="sm")
                download = gr.File(label="Export", visible=False)
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    model = gr.Dropdown(choices=choices.offered, value=default_choice, elem_id="model",
                                        label="Model (endpoint or GGUF)" if not choices.public else "Model",
                                        allow_custom_value=not choices.public)
                    d = config.settings
                    temperature = gr.Slider(0, 2, value=d.temperature, step=0.05, label="Temperature",
                                            elem_id="temperature")
                    top_p = gr.Slider(0.05, 1, value=d.top_p, step=0.01, label="Top-p")
                    max_tokens = gr.Slider(16, 32768, value=d.max_tokens, step=16, label="Max tokens")
                    budget = gr.Slider(0, 32768, value=d.thinking_budget, step=1,
                                       label="Thinking budget (tokens, 0 = none)")

        def chat(message, history, temperature, top_p, max_tokens, budget, model_choice=None):
            if not message or not message.strip():
                gr.Warning("Type a message first.")
                yield history, message
                return
            settings = ChatSettings(float(temperature), float(top_p), int(max_tokens), int(budget))
            try:
                with choices.turn(model_choice) as endpoint:  # a GGUF's server stays up while this turn streams
                    for h in respond(endpoint, config.api_key, message.strip(), history, settings):
                        yield h, ""
            except UserError as exc:
                yield [*(history or []), {"role": "user", "content": message.strip()}, note(str(exc))], ""

        def last_turn(history):
            history = list(history or [])
            last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=None)
            if last_user is None:
                return None, history
            return message_text(history[last_user]), history[:last_user]

        def retry_last(history, temperature, top_p, max_tokens, budget, model_choice):
            message, earlier = last_turn(history)
            if message is None:
                yield history, ""
                return
            yield from chat(message, earlier, temperature, top_p, max_tokens, budget, model_choice)

        def regenerate(history, temperature, top_p, max_tokens, model_choice, evt: gr.SelectData):
            value = str(evt.value or "")
            budget = value[len(REGENERATE):]
            if not (value.startswith(REGENERATE) and budget.isdigit()):  # option values come back from the browser
                yield history, ""
                return
            yield from retry_last(history, temperature, top_p, max_tokens, int(budget), model_choice)

        def switch_model(choice):
            try:
                choices.endpoint_for(choice)
            except UserError as exc:
                gr.Warning(str(exc))
                return gr.update(value=default_choice) if choices.public else gr.update()
            return gr.update()

        def listed(owner, current=None):
            return gr.update(choices=saved_chats.list_choices(store.list(owner)), value=current)

        def start_session(browser_id, request: gr.Request):
            if not saved_chats.is_id(browser_id):  # a browser seen for the first time (or a value it made up)
                browser_id = saved_chats.new_id()
            return browser_id, listed(saved_chats.owner(browser_id, request))

        def save(conversation, history, browser_id, request: gr.Request):
            owner = saved_chats.owner(browser_id, request)
            try:
                conversation = store.save(owner, conversation, history or [])
            except UserError as exc:
                gr.Warning(str(exc))
            return conversation, listed(owner, conversation)

        def reopen(picked, browser_id, request: gr.Request):
            owner = saved_chats.owner(browser_id, request)
            record = store.load(owner, picked)
            if record is None:
                gr.Warning("That conversation is no longer saved.")
                return None, [], "", listed(owner)
            return record["id"], record["messages"], record["title"], gr.update()

        def rename_current(conversation, new_title, browser_id, request: gr.Request):
            owner = saved_chats.owner(browser_id, request)
            try:
                store.rename(owner, conversation, new_title)
            except UserError as exc:
                gr.Warning(str(exc))
            return listed(owner, conversation)

        def delete_current(conversation, browser_id, request: gr.Request):
            owner = saved_chats.owner(browser_id, request)
            try:
                store.delete(owner, conversation)
            except UserError as exc:
                gr.Warning(str(exc))
            return None, listed(owner), [], ""

        def export(history, kind):
            path = Path(exports.name) / saved_chats.new_id() / f"conversation.{kind}"  # Gradio serves a copy
            write_text_atomic(path, saved_chats.to_markdown(history) if kind == "md" else saved_chats.to_json(history))
            return gr.File(value=str(path), visible=True)

        settings_inputs = [temperature, top_p, max_tokens, budget]
        saving = dict(fn=save, inputs=[conversation_id, chatbot, browser], outputs=[conversation_id, conversations],
                      api_name=False, queue=False)
        turns = [
            send.click(chat, [box, chatbot, *settings_inputs, model], [chatbot, box], api_name="chat"),
            box.submit(chat, [box, chatbot, *settings_inputs, model], [chatbot, box], api_name=False),
            retry.click(retry_last, [chatbot, *settings_inputs, model], [chatbot, box], api_name=False),
            chatbot.retry(retry_last, [chatbot, *settings_inputs, model], [chatbot, box], api_name=False),
            chatbot.option_select(regenerate, [chatbot, temperature, top_p, max_tokens, model], [chatbot, box],
                                  api_name=False),
        ]
        for turn in turns:
            turn.then(**saving)
        stop.click(None, None, None, cancels=turns, api_name=False).then(
            mark_stopped, chatbot, chatbot, api_name=False).then(**saving)
        for starts_over in (clear, new_chat):
            starts_over.click(lambda: ([], "", None, gr.update(value=None), ""), None,
                              [chatbot, box, conversation_id, conversations, title], api_name=False, queue=False)
        chatbot.clear(lambda: (None, gr.update(value=None), ""), None, [conversation_id, conversations, title],
                      api_name=False, queue=False)  # the trash icon: the next turn starts a new saved conversation
        model.change(switch_model, model, model, api_name=False)
        demo.load(start_session, browser, [browser, conversations], api_name=False, queue=False)
        conversations.input(reopen, [conversations, browser], [conversation_id, chatbot, title, conversations],
                            api_name=False, queue=False)
        rename.click(rename_current, [conversation_id, title, browser], conversations, api_name=False, queue=False)
        delete.click(delete_current, [conversation_id, browser], [conversation_id, conversations, chatbot, title],
                     api_name=False, queue=False)
        export_md.click(lambda h: export(h, "md"), chatbot, download, api_name=False)
        export_json.click(lambda h: export(h, "json"), chatbot, download, api_name=False)
    return demo, choices


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
