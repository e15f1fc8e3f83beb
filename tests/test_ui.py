"""r1-distill chat: the Gradio app, driven through its API and in real headless Chromium."""

import re
import time

import httpx
import pytest

from support import ChatApp, RunningServer, free_port
from r1_distill.ui.chat import history_for_model, note, wrap_bare_boxed

pytestmark = pytest.mark.slow


def _text(message) -> str:
    content = message["content"]
    return "".join(p.get("text", "") for p in content) if isinstance(content, list) else str(content)


def test_history_sent_to_the_model_has_no_thinking():
    history = [{"role": "user", "content": "2+2?"},
               {"role": "assistant", "content": "two plus two", "metadata": {"title": "Thought for 1 s", "status": "done"}},
               {"role": "assistant", "content": "4"},
               note("Cannot reach the model"),
               {"role": "user", "content": [{"type": "text", "text": "and 3+3?"}]}]
    assert history_for_model(history) == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                                          {"role": "user", "content": "and 3+3?"}]


def test_bare_boxed_is_put_in_math():
    assert wrap_bare_boxed("So \\boxed{\\frac{1}{2}}.") == "So $\\boxed{\\frac{1}{2}}$."
    assert wrap_bare_boxed("So $\\boxed{4}$ and \\[\\boxed{5}\\]") == "So $\\boxed{4}$ and \\[\\boxed{5}\\]"


def test_gradio_client_drives_the_chat(server, tmp_path):
    from gradio_client import Client

    app = ChatApp("--endpoint", server.url + "/v1", data_dir=tmp_path)
    try:
        client = Client(app.url, verbose=False)
        history, box = client.predict("What is 2+2?", [], 0.6, 0.95, 40, 8, api_name="/chat")
        assert box == ""
        roles = [(m["role"], bool((m.get("metadata") or {}).get("title"))) for m in history]
        assert roles == [("user", False), ("assistant", True), ("assistant", False)]
        thinking, answer = history[1], history[2]
        assert thinking["metadata"]["status"] == "done" and thinking["metadata"]["title"].startswith("Thought for")
        assert "8 tokens" in thinking["metadata"]["title"] and _text(thinking) and _text(answer)
        # a second turn carries the first (its thinking is dropped before sending)
        history2, _ = client.predict("And 3+3?", history, 0.6, 0.95, 24, 4, api_name="/chat")
        assert len(history2) == 6 and _text(history2[3]) == "And 3+3?"
    finally:
        app.stop()


def test_endpoint_down_shows_an_error_and_the_next_message_works(tiny_gguf, tmp_path):
    from gradio_client import Client

    port = free_port()
    app = ChatApp("--endpoint", f"http://127.0.0.1:{port}/v1", data_dir=tmp_path)
    try:
        client = Client(app.url, verbose=False)
        history, _ = client.predict("Hello?", [], 0.6, 0.95, 16, 4, api_name="/chat")
        assert "Cannot reach the model" in _text(history[-1])
        srv = RunningServer(tiny_gguf, "--ctx", "512", port=port)
        try:
            history, _ = client.predict("Hello again?", history, 0.6, 0.95, 16, 4, api_name="/chat")
            assert (history[-2].get("metadata") or {}).get("title", "").startswith("Thought for")
            assert _text(history[-1]) and "⚠️" not in _text(history[-1])
        finally:
            srv.stop()
    finally:
        app.stop()


def test_browser_sees_thinking_apart_and_can_stop(server, chromium, artifacts_dir, tmp_path):
    quick = ChatApp("--endpoint", server.url + "/v1", "--max-tokens", "48", "--thinking-budget", "12", data_dir=tmp_path)
    slow = ChatApp("--endpoint", server.url + "/v1", "--max-tokens", "900", "--thinking-budget", "0", data_dir=tmp_path)
    try:
        page = chromium.new_page(viewport={"width": 1100, "height": 900})
        page.goto(quick.url)
        page.locator("#prompt textarea").fill("What is 17 * 23?")
        page.locator("#send").click()
        page.get_by_text("Thought for").first.wait_for(timeout=60_000)
        answer = page.locator("#chat .bot-row:not(:has(.thought-group))").first  # the answer: a message of its own
        answer.wait_for(timeout=30_000)
        page.locator("#chat .options .option").first.wait_for(timeout=30_000)  # offered once the turn is done
        thought = page.locator("#chat .bot-row:has(.thought-group)").first
        title = thought.locator(".thought-group .title").inner_text().strip()
        assert re.fullmatch(r"Thought for \d+\.\d s, \d+ tokens \(budget 12\)", title), title  # no second duration
        if thought.inner_text().strip() == title:  # folded (it stays open when it was drawn while streaming)
            thought.locator(".thought-group .title").click()
            deadline = time.time() + 10
            while thought.inner_text().strip() == title and time.time() < deadline:  # until it has unfolded
                time.sleep(0.1)
        reasoning, reply = thought.inner_text().replace(title, "").strip(), answer.inner_text().strip()
        assert reasoning and reply and reply not in reasoning and reasoning not in reply
        assert page.locator("#chat").get_by_text("What is 17 * 23?").count() >= 1
        page.screenshot(path=str(artifacts_dir / "ui-chat.png"), full_page=True)

        page.goto(slow.url)
        page.locator("#prompt textarea").fill("Think for a long time.")
        page.locator("#send").click()
        page.get_by_text("Thinking...").first.wait_for(timeout=60_000)
        time.sleep(1.0)
        page.locator("#stop").click()
        time.sleep(1.0)
        frozen = page.locator("#chat").inner_text()
        time.sleep(2.0)
        assert page.locator("#chat").inner_text() == frozen, "the stream went on after Stop"
        assert "Stopped while thinking" in frozen and "Thinking..." not in frozen
        deadline = time.time() + 10
        while time.time() < deadline and httpx.get(server.url + "/health").json()["slots_busy"]:
            time.sleep(0.2)
        assert httpx.get(server.url + "/health").json()["slots_busy"] == 0, "Stop did not free the server's slot"
        page.screenshot(path=str(artifacts_dir / "ui-stopped.png"), full_page=True)
    finally:
        quick.stop()
        slow.stop()
