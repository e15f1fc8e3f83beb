"""The chat app's components: saved conversations on the left, the conversation, its buttons and the
settings (model, sampling, thinking budget) on the right. Built inside a gr.Blocks."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from . import history as saved_chats
from .chat import ChatSettings
from .models import ModelChoices

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False},
         {"left": "\\(", "right": "\\)", "display": False}, {"left": "\\[", "right": "\\]", "display": True}]


@dataclass
class ChatLayout:
    browser: gr.BrowserState
    conversation_id: gr.State
    new_chat: gr.Button
    conversations: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    chatbot: gr.Chatbot
    box: gr.Textbox
    send: gr.Button
    stop: gr.Button
    retry: gr.Button
    clear: gr.Button
    export_md: gr.Button
    export_json: gr.Button
    download: gr.File
    model: gr.Dropdown
    temperature: gr.Slider
    top_p: gr.Slider
    max_tokens: gr.Slider
    budget: gr.Slider


def chat_layout(choices: ModelChoices, defaults: ChatSettings) -> ChatLayout:
    parts: dict = {"browser": gr.BrowserState("", storage_key=saved_chats.STORAGE_KEY,
                                              secret=saved_chats.browser_secret()),
                   "conversation_id": gr.State(None)}
    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            parts.update(_saved_conversations())
        with gr.Column(scale=4):
            gr.Markdown("### r1-distill chat: the thinking apart from the answer")
            parts.update(_conversation())
            with gr.Accordion("Settings", open=False, elem_id="settings"):
                parts.update(_settings(choices, defaults))
    return ChatLayout(**parts)


def _saved_conversations() -> dict:
    new_chat = gr.Button("New chat", size="sm", elem_id="new-chat")
    conversations = gr.Radio(choices=[], label="Saved conversations", elem_id="history")
    with gr.Accordion("Rename or delete", open=False, elem_id="manage"):
        title = gr.Textbox(label="Title", elem_id="title", max_lines=1)
        with gr.Row():
            rename = gr.Button("Rename", size="sm", elem_id="rename")
            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete")
    return dict(new_chat=new_chat, conversations=conversations, title=title, rename=rename, delete=delete)


def _conversation() -> dict:
    chatbot = gr.Chatbot(label="Conversation", height=520, latex_delimiters=LATEX, elem_id="chat",
                         buttons=["copy", "copy_all"], group_consecutive_messages=False)
    with gr.Row():
        box = gr.Textbox(placeholder="Ask a question (Enter to send)", show_label=False, scale=8, elem_id="prompt")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
        stop = gr.Button("Stop", scale=1, elem_id="stop")
    with gr.Row():
        retry = gr.Button("Retry", size="sm", elem_id="retry")
        clear = gr.Button("Clear", size="sm", elem_id="clear")
        export_md = gr.Button("Export Markdown", size="sm")
        export_json = gr.Button("Export JSON", size="sm")
    download = gr.File(label="Export", visible=False)
    return dict(chatbot=chatbot, box=box, send=send, stop=stop, retry=retry, clear=clear, export_md=export_md,
                export_json=export_json, download=download)


def _settings(choices: ModelChoices, d: ChatSettings) -> dict:
    model = gr.Dropdown(choices=choices.offered, value=choices.default, elem_id="model",
                        label="Model (endpoint or GGUF)" if not choices.public else "Model",
                        allow_custom_value=not choices.public)
    temperature = gr.Slider(0, 2, value=d.temperature, step=0.05, label="Temperature", elem_id="temperature")
    top_p = gr.Slider(0.05, 1, value=d.top_p, step=0.01, label="Top-p")
    max_tokens = gr.Slider(16, 32768, value=d.max_tokens, step=16, label="Max tokens")
    budget = gr.Slider(0, 32768, value=d.thinking_budget, step=1, label="Thinking budget (tokens, 0 = none)")
    return dict(model=model, temperature=temperature, top_p=top_p, max_tokens=max_tokens, budget=budget)
