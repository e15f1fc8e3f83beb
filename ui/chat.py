"""One chat turn against an OpenAI-compatible endpoint, as Gradio chat messages.

The thinking streams into a collapsible message ("Thinking..." while it streams, "Thought for N s"
when done); the answer streams below it. Only real turns go back to the model: the thinking is
marked by its `title`, notes (errors, limits) by an `id` starting with NOTE_ID. Both are keys of
Gradio's MetadataDict, the only ones that survive the trip through the browser (any other key is
dropped when Gradio reads the history back).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Iterator, Optional

from r1_distill.reasoning import ReasoningStreamParser

NOTE_ID = "r1-note"
REGENERATE = "regenerate:"  # option values on the last answer: "regenerate:<thinking budget>"
REGENERATE_BUDGETS = (0, 64, 256, 1024, 4096)


@dataclass
class ChatSettings:
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 2048
    thinking_budget: int = 0  # 0: no budget


def wrap_bare_boxed(text: str) -> str:
    """Put a \\boxed{...} that stands outside math delimiters inside $...$ so KaTeX renders it."""
    out, i = [], 0
    for m in re.finditer(r"\\boxed\{", text):
        if m.start() < i:
            continue
        before = text[: m.start()]
        in_math = before.count("$") % 2 == 1 or before.count("\\(") > before.count("\\)") or before.count("\\[") > before.count("\\]")
        depth, j = 0, m.end() - 1
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        if in_math or j >= len(text):
            continue
        out.append(text[i: m.start()] + "$" + text[m.start(): j + 1] + "$")
        i = j + 1
    return "".join(out) + text[i:]


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # Gradio hands content back as parts
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def is_turn(message: dict) -> bool:
    """A user message or a final answer: not thinking, not a note."""
    meta = message.get("metadata") or {}
    if meta.get("title") or str(meta.get("id") or "").startswith(NOTE_ID):
        return False
    return message.get("role") in ("user", "assistant")


def history_for_model(history: list[dict]) -> list[dict]:
    """What the model sees: user turns and final answers; no thinking, no notes."""
    messages = []
    for m in history:
        text = message_text(m)
        if is_turn(m) and text:
            messages.append({"role": m["role"], "content": text})
    return messages


def note(text: str) -> dict:
    return {"role": "assistant", "content": f"⚠️ {text}", "metadata": {"id": f"{NOTE_ID}-{uuid.uuid4().hex[:8]}"}}


def regenerate_options(used_budget: int, max_tokens: int) -> list[dict]:
    """The buttons under the last answer: the same turn again with another thinking budget."""
    options = []
    for budget in REGENERATE_BUDGETS:
        if budget == used_budget or budget >= max_tokens:
            continue
        label = "↻ no thinking limit" if budget == 0 else f"↻ think ≤ {budget} tokens"
        options.append({"value": f"{REGENERATE}{budget}", "label": label})
    return options


def stream_chat(endpoint: str, api_key: str, history: list[dict], settings: ChatSettings) -> Iterator[tuple[str, str, dict]]:
    """Yields (kind, text, info): kind "reasoning" / "answer" pieces, then ("done", "", usage)."""
    from openai import OpenAI

    client = OpenAI(base_url=endpoint, api_key=api_key, max_retries=0, timeout=600)
    extra = {"thinking_budget_tokens": settings.thinking_budget} if settings.thinking_budget > 0 else {}
    stream = client.chat.completions.create(
        model=_model_id(client), messages=history_for_model(history), stream=True,
        temperature=settings.temperature, top_p=settings.top_p, max_tokens=int(settings.max_tokens),
        stream_options={"include_usage": True}, extra_body=extra or None)
    raw = ReasoningStreamParser(assume_thinking=True)
    separate_reasoning, explicit_think, usage, finish = False, False, {}, None
    raw_reasoning: list[str] = []
    try:
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage.model_dump()
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            finish = chunk.choices[0].finish_reason or finish
            extra_fields = delta.model_extra or {}
            reasoning = extra_fields.get("reasoning_content") or extra_fields.get("reasoning")
            if reasoning:
                separate_reasoning = True
                yield "reasoning", reasoning, {}
            if delta.content:
                if separate_reasoning:
                    yield "answer", delta.content, {}
                    continue
                explicit_think = explicit_think or "<think>" in delta.content
                for kind, text in raw.feed(delta.content):
                    if kind == "reasoning":
                        raw_reasoning.append(text)
                    yield kind, text, {}
    finally:
        stream.close()  # a stopped chat closes the connection: the server frees the slot
    for kind, text in raw.finish():
        yield kind, text, {}
    if not separate_reasoning and not raw.thinking_closed and not explicit_think and raw_reasoning and finish == "stop":
        # a model that did not think at all: what streamed as thinking was the answer
        yield "reclassify", "", {}
    yield "done", "", {"usage": usage, "finish_reason": finish}


def _model_id(client) -> str:
    try:
        models = client.models.list().data
        return models[0].id if models else "default"
    except Exception:
        return "default"


def respond(endpoint: str, api_key: str, message: str, history: list[dict], settings: ChatSettings) -> Iterator[list[dict]]:
    """One turn: appends the user message, a thinking message and the answer, yielding as they grow."""
    history = [{k: v for k, v in m.items() if k != "options"} for m in history or []]  # only the last answer offers them
    history.append({"role": "user", "content": message})
    thinking = {"role": "assistant", "content": "", "metadata": {"title": "Thinking...", "status": "pending"}}
    answer = {"role": "assistant", "content": ""}
    history.append(thinking)
    started = time.perf_counter()
    reasoning_text, answer_text = "", ""
    yield history
    try:
        for kind, text, info in stream_chat(endpoint, api_key, history[:-1], settings):
            if kind == "reasoning":
                reasoning_text += text
                thinking["content"] = reasoning_text
            elif kind == "answer":
                if thinking["metadata"]["status"] == "pending":
                    close_thinking(thinking, started, None, settings.thinking_budget)
                answer_text += text
                answer["content"] = wrap_bare_boxed(answer_text)
                if answer not in history:
                    history.append(answer)
            elif kind == "reclassify":
                history.remove(thinking)
                answer_text, reasoning_text = reasoning_text + answer_text, ""
                answer["content"] = wrap_bare_boxed(answer_text)
                if answer not in history:
                    history.append(answer)
            elif kind == "done":
                tokens = (info.get("usage") or {}).get("completion_tokens_details") or {}
                if thinking in history:
                    close_thinking(thinking, started, tokens.get("reasoning_tokens"), settings.thinking_budget)
                    if not reasoning_text:
                        history.remove(thinking)
                if info.get("finish_reason") == "length" and not answer_text:
                    history.append(note("The token limit was reached while the model was still thinking: "
                                        "raise Max tokens or set a thinking budget."))
                if answer in history:
                    answer["options"] = regenerate_options(settings.thinking_budget, settings.max_tokens)
            yield history
    except Exception as exc:
        if thinking in history and not reasoning_text:
            history.remove(thinking)
        elif thinking in history:
            close_thinking(thinking, started, None, settings.thinking_budget)
        history.append(note(describe_error(exc, endpoint)))
        yield history


def close_thinking(thinking: dict, started: float, tokens: Optional[int], budget: int = 0) -> None:
    # the duration is in the title only: Gradio prints metadata["duration"] after the title again
    duration = time.perf_counter() - started
    details = (f", {tokens} tokens" if tokens else "") + (f" (budget {budget})" if budget else "")
    thinking["metadata"] = {"title": f"Thought for {duration:.1f} s{details}", "status": "done"}


def describe_error(exc: Exception, endpoint: str) -> str:
    from openai import APIConnectionError, APIStatusError

    if isinstance(exc, APIConnectionError):
        return f"Cannot reach the model at {endpoint}. Start it (r1-distill serve ...) and send again."
    if isinstance(exc, APIStatusError):
        try:
            message = exc.response.json()["error"]["message"]
        except Exception:
            message = exc.message
        return f"The model server answered {exc.status_code}: {message}"
    return f"Error: {type(exc).__name__}: {exc}"


def mark_stopped(history: list[dict]) -> list[dict]:
    """After Stop: a thinking panel still pending says it was stopped."""
    history = list(history or [])
    for m in history:
        meta = m.get("metadata") or {}
        if meta.get("status") == "pending":
            m["metadata"] = {**meta, "title": "Stopped while thinking", "status": "done"}
    return history
