"""`r1-distill chat`: a Gradio chat app that shows the thinking apart from the answer.

It talks to any OpenAI-compatible endpoint (our serve/, llama-server, vLLM, Ollama, DeepSeek's API),
reading `reasoning_content`, `reasoning` or raw `<think>` text alike. With `--model FILE.gguf` it
starts r1-distill's own server in this process on a free local port and talks to that.

The thinking streams into a collapsible message ("Thinking..." while it streams, "Thought for N s"
when done); the answer streams below it; earlier turns' thinking is never sent back to the model.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from r1_distill.errors import UserError
from r1_distill.reasoning import ReasoningStreamParser

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False},
         {"left": "\\(", "right": "\\)", "display": False}, {"left": "\\[", "right": "\\]", "display": True}]


@dataclass
class ChatSettings:
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 2048
    thinking_budget: int = 0  # 0: no budget


@dataclass
class ChatConfig:
    endpoint: Optional[str] = None
    model: Optional[str] = None  # a .gguf served in-process
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    open_browser: bool = True
    api_key: str = "none"
    settings: ChatSettings = field(default_factory=ChatSettings)
    search_dirs: list[str] = field(default_factory=lambda: ["runs", "."])


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


def history_for_model(history: list[dict]) -> list[dict]:
    """What the model sees: user turns and final answers; no thinking, no error notes."""
    messages = []
    for m in history:
        meta = m.get("metadata") or {}
        if meta.get("title") or meta.get("r1_error"):
            continue
        content = m.get("content")
        if isinstance(content, list):  # Gradio may hand back content as parts
            content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
        if m.get("role") in ("user", "assistant") and content:
            messages.append({"role": m["role"], "content": content})
    return messages


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """r1-distill's server for a GGUF, in this process, on a free 127.0.0.1 port."""

    def __init__(self, gguf: str, ctx: int = 4096):
        import uvicorn

        from r1_distill.serve.app import ServerConfig, create_app

        if not Path(gguf).is_file():
            raise UserError(f"model file {gguf} does not exist")
        self.port = _free_port()
        app = create_app(ServerConfig(model=gguf, port=self.port, parallel=2, ctx=ctx))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


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
    history = list(history or [])
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
                    _close_thinking(thinking, started, None)
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
                    _close_thinking(thinking, started, tokens.get("reasoning_tokens"))
                    if not reasoning_text:
                        history.remove(thinking)
                if info.get("finish_reason") == "length" and not answer_text:
                    history.append(_note("The token limit was reached while the model was still thinking: "
                                         "raise Max tokens or set a thinking budget."))
            yield history
    except Exception as exc:
        if thinking in history and not reasoning_text:
            history.remove(thinking)
        elif thinking in history:
            _close_thinking(thinking, started, None)
        history.append(_note(_describe(exc, endpoint)))
        yield history


def _close_thinking(thinking: dict, started: float, tokens: Optional[int]) -> None:
    duration = time.perf_counter() - started
    count = f", {tokens} tokens" if tokens else ""
    thinking["metadata"] = {"title": f"Thought for {duration:.1f} s{count}", "status": "done", "duration": round(duration, 2)}


def _note(text: str) -> dict:
    return {"role": "assistant", "content": f"⚠️ {text}", "metadata": {"r1_error": True}}


def _describe(exc: Exception, endpoint: str) -> str:
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


def to_markdown(history: list[dict]) -> str:
    lines = ["# r1-distill conversation", ""]
    for m in history:
        meta = m.get("metadata") or {}
        if meta.get("title"):
            lines += [f"<details><summary>{meta['title']}</summary>", "", str(m.get("content", "")), "", "</details>", ""]
        else:
            lines += [f"**{m['role']}**: {m.get('content', '')}", ""]
    return "\n".join(lines)


def local_models(dirs: list[str]) -> list[str]:
    found = []
    for d in dirs:
        if Path(d).is_dir():
            found += sorted(str(p) for p in Path(d).rglob("*.gguf"))[:50]
    return found


def build_app(config: ChatConfig):
    import gradio as gr

    state = {"endpoint": config.endpoint, "local": None}
    if config.model:
        state["local"] = LocalServer(config.model)
        state["endpoint"] = state["local"].url
    if not state["endpoint"]:
        raise UserError("pass --model FILE.gguf or --endpoint URL (an OpenAI-compatible server)")
    choices = ([config.model] if config.model else []) + [m for m in local_models(config.search_dirs) if m != config.model]
    if config.endpoint:
        choices = [config.endpoint] + choices

    with gr.Blocks(title="r1-distill chat") as demo:
        gr.Markdown("### r1-distill chat: the thinking apart from the answer")
        chatbot = gr.Chatbot(label="Conversation", height=520, latex_delimiters=LATEX, elem_id="chat",
                             buttons=["copy"])
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
        with gr.Accordion("Settings", open=False):
            model = gr.Dropdown(choices=choices, value=choices[0] if choices else None, label="Model (endpoint or GGUF)",
                                allow_custom_value=True)
            d = config.settings
            temperature = gr.Slider(0, 2, value=d.temperature, step=0.05, label="Temperature")
            top_p = gr.Slider(0.05, 1, value=d.top_p, step=0.01, label="Top-p")
            max_tokens = gr.Slider(16, 32768, value=d.max_tokens, step=16, label="Max tokens")
            budget = gr.Slider(0, 32768, value=d.thinking_budget, step=1, label="Thinking budget (tokens, 0 = none)")

        def chat(message, history, temperature, top_p, max_tokens, budget):
            if not message or not message.strip():
                gr.Warning("Type a message first.")
                yield history, message
                return
            settings = ChatSettings(float(temperature), float(top_p), int(max_tokens), int(budget))
            for h in respond(state["endpoint"], config.api_key, message.strip(), history, settings):
                yield h, ""

        def retry_last(history, temperature, top_p, max_tokens, budget):
            history = list(history or [])
            last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=None)
            if last_user is None:
                yield history, ""
                return
            message = history[last_user]["content"]
            yield from chat(message, history[:last_user], temperature, top_p, max_tokens, budget)

        def switch_model(choice):
            if not choice or choice == state["endpoint"]:
                return
            if state["local"] is not None:
                state["local"].stop()
                state["local"] = None
            if choice.startswith(("http://", "https://")):
                state["endpoint"] = choice
            else:
                try:
                    state["local"] = LocalServer(choice)
                    state["endpoint"] = state["local"].url
                except UserError as exc:
                    gr.Warning(str(exc))

        def export(history, kind):
            import tempfile

            path = Path(tempfile.mkdtemp()) / f"conversation.{kind}"
            path.write_text(to_markdown(history) if kind == "md" else json.dumps(history, indent=2, ensure_ascii=False))
            return gr.File(value=str(path), visible=True)

        settings_inputs = [temperature, top_p, max_tokens, budget]
        sent = send.click(chat, [box, chatbot, *settings_inputs], [chatbot, box], api_name="chat")
        submitted = box.submit(chat, [box, chatbot, *settings_inputs], [chatbot, box], api_name=False)
        retried = retry.click(retry_last, [chatbot, *settings_inputs], [chatbot, box], api_name=False)
        stop.click(None, None, None, cancels=[sent, submitted, retried], api_name=False).then(
            mark_stopped, chatbot, chatbot, api_name=False)
        clear.click(lambda: ([], ""), None, [chatbot, box], api_name=False)
        model.change(switch_model, model, None, api_name=False)
        export_md.click(lambda h: export(h, "md"), chatbot, download, api_name=False)
        export_json.click(lambda h: export(h, "json"), chatbot, download, api_name=False)
    return demo, state


def launch(config: ChatConfig) -> None:
    demo, _ = build_app(config)
    demo.queue(default_concurrency_limit=4).launch(server_name=config.host, server_port=config.port, share=config.share,
                                                   inbrowser=config.open_browser, show_error=True, quiet=True)
