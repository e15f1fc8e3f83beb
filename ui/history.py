"""Saved conversations: one JSON file each on the machine that runs the app, in a folder per owner.

Without a login the owner is the browser, known by a random 128-bit id kept in its localStorage (a
gr.BrowserState), so each browser lists only its own conversations: other people never see them, and
tabs of one browser share them without overwriting each other (each save writes one file, atomically).
That id is what keeps a list private: whoever has it can open the list. Gradio encrypts what it keeps in
localStorage with a secret that it also sends to the page, so the secret hides nothing; it only has to
stay the same across restarts, or the id is lost: `browser_secret()` keeps one in the chat data folder.
With `--auth` the owner is the logged-in user (`owner()`): a person finds their conversations from any
browser they log in from, and people sharing a browser never see each other's. A user's folder is
named by a keyed hash of the username (`user_secret()`, never sent to a page), so the name reveals
nothing and no browser id a page makes up can reach it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Optional

from r1_distill.errors import UserError
from r1_distill.files import write_json_atomic, write_text_atomic

from .chat import message_text

TITLE_CHARS = 60
MAX_SAVED_BYTES = 4 << 20  # one saved conversation's file
STORAGE_KEY = "r1-distill-chat-browser"
_ID = re.compile(r"[0-9a-f]{32}")  # owner and conversation ids: what a browser sends is checked against it


def chat_data_dir() -> Path:
    """$R1_DISTILL_CHAT_DIR, else ~/.local/share/r1-distill/chat: saved conversations, the storage secret,
    the desktop window's browser data."""
    default = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "r1-distill" / "chat"
    return Path(os.environ.get("R1_DISTILL_CHAT_DIR") or default)


def browser_secret() -> str:
    return _kept_secret("browser-secret")


def user_secret() -> str:
    """The key of the hash that names a logged-in user's folder: it stays on this machine."""
    return _kept_secret("user-secret")


def _kept_secret(name: str) -> str:
    return _secret_at(chat_data_dir() / name)


@functools.lru_cache(maxsize=None)
def _secret_at(path: Path) -> str:
    """Read (or made) once a process: owner() asks on every request, and a secret that changed under a
    running app would lose every user's list."""
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # an empty one, left by a crash
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(secret + "\n")
    return secret


def owner(browser: str, request=None) -> str:
    """Whose conversations a request lists and saves: the logged-in user's (a gr.Request's `username`,
    set with --auth), else the browser's own id."""
    username = getattr(request, "username", None)
    if not username:
        return browser
    return hmac.new(user_secret().encode(), f"user:{username}".encode(), hashlib.sha256).hexdigest()[:32]


def new_id() -> str:
    return uuid.uuid4().hex


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def default_title(messages: list[dict]) -> str:
    first = next((message_text(m) for m in messages if m.get("role") == "user" and message_text(m).strip()), "")
    first = " ".join(first.split())
    if not first:
        return "New chat"
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1] + "…"


class ConversationStore:
    """`root/<owner>/<conversation id>.json` (`owner()`: a browser's id or a user's key), each
    {"id", "title", "renamed", "updated", "messages"}."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, browser: str, conversation: str) -> Path:
        if not (is_id(browser) and is_id(conversation)):
            raise UserError("this conversation's id is not one this app made: reload the page")
        return self.root / browser / f"{conversation}.json"

    def load(self, browser: str, conversation: Optional[str]) -> Optional[dict]:
        """The saved conversation; None when there is none (or an id is not one this app made)."""
        if not (is_id(browser) and is_id(conversation)):
            return None
        try:
            return json.loads(self._path(browser, conversation).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def list(self, browser: str) -> list[dict]:
        """The owner's conversations without their messages, newest first."""
        if not is_id(browser) or not (self.root / browser).is_dir():
            return []
        found = []
        for path in (self.root / browser).glob("*.json"):
            record = self.load(browser, path.stem) if is_id(path.stem) else None
            if record:
                found.append({k: record.get(k) for k in ("id", "title", "updated")})
        return sorted(found, key=lambda r: r["updated"] or 0, reverse=True)

    def save(self, browser: str, conversation: Optional[str], messages: list[dict]) -> Optional[str]:
        """Write the conversation (a new id when it has none); an empty one is not saved."""
        if not messages:
            return conversation
        conversation = conversation if is_id(conversation) else new_id()
        path = self._path(browser, conversation)
        old = self.load(browser, conversation) or {}
        renamed = bool(old.get("renamed"))
        text = json.dumps({"id": conversation, "title": old["title"] if renamed else default_title(messages),
                           "renamed": renamed, "updated": time.time(), "messages": messages},
                          indent=2, ensure_ascii=False, default=str) + "\n"
        if len(text.encode("utf-8")) > MAX_SAVED_BYTES:  # a visitor must not be able to fill the disk
            raise UserError(f"this conversation is over {MAX_SAVED_BYTES >> 20} MB and is no longer saved: "
                            "export it, and start a new chat")
        write_text_atomic(path, text)
        return conversation

    def rename(self, browser: str, conversation: Optional[str], title: str) -> None:
        title = " ".join((title or "").split())
        record = self.load(browser, conversation)
        if record is None:
            raise UserError("open or start a conversation before renaming it")
        if not title:
            raise UserError("type a title to rename the conversation to")
        write_json_atomic(self._path(browser, conversation), {**record, "title": title[:200], "renamed": True})

    def delete(self, browser: str, conversation: Optional[str]) -> None:
        if conversation:
            self._path(browser, conversation).unlink(missing_ok=True)


def list_choices(records: list[dict]) -> list[tuple[str, str]]:
    """(label, id) pairs for the side list."""
    return [(r.get("title") or "New chat", r["id"]) for r in records]


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
