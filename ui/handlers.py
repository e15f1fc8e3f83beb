"""What the chat app does on each event: a turn (send, retry, regenerate with a budget), the model picker,
and the saved conversations (list, save, reopen, rename, delete, export). The layout is ui/layout.py; the
wiring of events to these is ui/app.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from r1_distill.errors import UserError
from r1_distill.files import write_text_atomic

from . import history as saved_chats
from .chat import REGENERATE, ChatSettings, message_text, note, respond
from .models import ModelChoices


class ChatHandlers:
    def __init__(self, choices: ModelChoices, store: saved_chats.ConversationStore, api_key: str):
        self.choices, self.store, self.api_key = choices, store, api_key
        self.default_choice = choices.default
        self.exports = tempfile.TemporaryDirectory(prefix="r1-distill-chat-exports-")  # removed when the app exits

    # -- a turn -----------------------------------------------------------------------------------------
    def chat(self, message, history, temperature, top_p, max_tokens, budget, model_choice=None):
        if not message or not message.strip():
            gr.Warning("Type a message first.")
            yield history, message
            return
        settings = ChatSettings(float(temperature), float(top_p), int(max_tokens), int(budget))
        try:
            with self.choices.turn(model_choice) as endpoint:  # a GGUF's server stays up while this turn streams
                for h in respond(endpoint, self.api_key, message.strip(), history, settings):
                    yield h, ""
        except UserError as exc:
            yield [*(history or []), {"role": "user", "content": message.strip()}, note(str(exc))], ""

    def retry_last(self, history, temperature, top_p, max_tokens, budget, model_choice):
        message, earlier = last_turn(history)
        if message is None:
            yield history, ""
            return
        yield from self.chat(message, earlier, temperature, top_p, max_tokens, budget, model_choice)

    def regenerate(self, history, temperature, top_p, max_tokens, model_choice, evt: gr.SelectData):
        value = str(evt.value or "")
        budget = value[len(REGENERATE):]
        if not (value.startswith(REGENERATE) and budget.isdigit()):  # option values come back from the browser
            yield history, ""
            return
        yield from self.retry_last(history, temperature, top_p, max_tokens, int(budget), model_choice)

    def switch_model(self, choice):
        try:
            self.choices.endpoint_for(choice)
        except UserError as exc:
            gr.Warning(str(exc))
            return gr.update(value=self.default_choice) if self.choices.public else gr.update()
        return gr.update()

    # -- saved conversations ----------------------------------------------------------------------------
    def listed(self, owner, current=None):
        return gr.update(choices=saved_chats.list_choices(self.store.list(owner)), value=current)

    def start_session(self, browser_id, request: gr.Request):
        if not saved_chats.is_id(browser_id):  # a browser seen for the first time (or a value it made up)
            browser_id = saved_chats.new_id()
        return browser_id, self.listed(saved_chats.owner(browser_id, request))

    def save(self, conversation, history, browser_id, request: gr.Request):
        owner = saved_chats.owner(browser_id, request)
        try:
            conversation = self.store.save(owner, conversation, history or [])
        except UserError as exc:
            gr.Warning(str(exc))
        return conversation, self.listed(owner, conversation)

    def reopen(self, picked, browser_id, request: gr.Request):
        owner = saved_chats.owner(browser_id, request)
        record = self.store.load(owner, picked)
        if record is None:
            gr.Warning("That conversation is no longer saved.")
            return None, [], "", self.listed(owner)
        return record["id"], record["messages"], record["title"], gr.update()

    def rename_current(self, conversation, new_title, browser_id, request: gr.Request):
        owner = saved_chats.owner(browser_id, request)
        try:
            self.store.rename(owner, conversation, new_title)
        except UserError as exc:
            gr.Warning(str(exc))
        return self.listed(owner, conversation)

    def delete_current(self, conversation, browser_id, request: gr.Request):
        owner = saved_chats.owner(browser_id, request)
        try:
            self.store.delete(owner, conversation)
        except UserError as exc:
            gr.Warning(str(exc))
        return None, self.listed(owner), [], ""

    def export(self, history, kind):
        path = Path(self.exports.name) / saved_chats.new_id() / f"conversation.{kind}"  # Gradio serves a copy
        write_text_atomic(path, saved_chats.to_markdown(history) if kind == "md" else saved_chats.to_json(history))
        return gr.File(value=str(path), visible=True)


def last_turn(history):
    """The last user message's text and the history before it (None, history when there is none)."""
    history = list(history or [])
    last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=None)
    if last_user is None:
        return None, history
    return message_text(history[last_user]), history[:last_user]
