"""Saved conversations: the records kept in each browser's localStorage (a gr.BrowserState), and exports.

Each browser keeps its own list, so tabs of one browser share it and other people never see it.
A record is {"id", "title", "updated", "messages"}, newest first, at most MAX_SAVED.
Gradio encrypts the stored value with a secret that must stay the same across restarts, or every
saved list becomes unreadable: `browser_secret()` keeps one in the chat data folder.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from pathlib import Path

from r1_distill.errors import UserError
from r1_distill.files import write_text_atomic

from .chat import message_text

MAX_SAVED = 100
TITLE_CHARS = 60
STORAGE_KEY = "r1-distill-chat-conversations"


def chat_data_dir() -> Path:
    """$R1_DISTILL_CHAT_DIR, else ~/.local/share/r1-distill/chat (the storage secret, the window's browser data)."""
    default = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "r1-distill" / "chat"
    return Path(os.environ.get("R1_DISTILL_CHAT_DIR") or default)


def browser_secret() -> str:
    path = chat_data_dir() / "browser-secret"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(24)
    write_text_atomic(path, secret + "\n")
    path.chmod(0o600)
    return secret


def default_title(messages: list[dict]) -> str:
    first = next((message_text(m) for m in messages if m.get("role") == "user" and message_text(m).strip()), "")
    first = " ".join(first.split())
    if not first:
        return "New chat"
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1] + "…"


def save(saved: list[dict] | None, conversation_id: str | None, messages: list[dict]) -> tuple[str | None, list[dict]]:
    """Put the conversation first in the list (new id when it has none); an empty one is not saved."""
    saved = [dict(r) for r in saved or []]
    if not messages:
        return conversation_id, saved
    old = next((r for r in saved if r["id"] == conversation_id), None) if conversation_id else None
    record = {"id": conversation_id or uuid.uuid4().hex[:12],
              "title": old["title"] if old and old.get("renamed") else default_title(messages),
              "renamed": bool(old and old.get("renamed")), "updated": time.time(), "messages": messages}
    rest = [r for r in saved if r["id"] != record["id"]]
    return record["id"], [record, *rest][:MAX_SAVED]


def rename(saved: list[dict] | None, conversation_id: str | None, title: str) -> list[dict]:
    title = " ".join((title or "").split())
    if not conversation_id:
        raise UserError("open or start a conversation before renaming it")
    if not title:
        raise UserError("type a title to rename the conversation to")
    return [{**r, "title": title[:200], "renamed": True} if r["id"] == conversation_id else r for r in saved or []]


def delete(saved: list[dict] | None, conversation_id: str | None) -> list[dict]:
    return [r for r in saved or [] if r["id"] != conversation_id]


def find(saved: list[dict] | None, conversation_id: str | None) -> dict | None:
    return next((r for r in saved or [] if r["id"] == conversation_id), None)


def list_choices(saved: list[dict] | None) -> list[tuple[str, str]]:
    """(label, id) pairs for the side list, newest first."""
    return [(r.get("title") or "New chat", r["id"]) for r in saved or []]


def to_markdown(history: list[dict]) -> str:
    lines = ["# r1-distill conversation", ""]
    for m in history:
        meta = m.get("metadata") or {}
        if meta.get("title"):
            lines += [f"<details><summary>{meta['title']}</summary>", "", message_text(m), "", "</details>", ""]
        else:
            lines += [f"**{m['role']}**: {message_text(m)}", ""]
    return "\n".join(lines)


def to_json(history: list[dict]) -> str:
    return json.dumps(history, indent=2, ensure_ascii=False)
