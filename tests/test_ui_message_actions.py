"""From the message itself: copy the answer and the thinking, and regenerate the turn with another
thinking budget (real Chromium; the budget and the history are read at the endpoint)."""

import time

import pytest

from support import ChatApp, RecordingEndpoint

pytestmark = pytest.mark.slow


def _loose(text: str) -> str:
    return " ".join(text.split())


def _copied(page, row) -> str:
    """What the message's copy button puts on the clipboard (the clipboard is cleared first)."""
    page.evaluate("navigator.clipboard.writeText('')")
    row.hover()
    buttons = row.locator("xpath=following-sibling::div[contains(@class, 'message-buttons')][1]")  # under the message
    buttons.get_by_label("Copy message").click()
    deadline = time.time() + 10
    while not (text := page.evaluate("navigator.clipboard.readText()")) and time.time() < deadline:
        time.sleep(0.1)
    assert text, "the copy button put nothing on the clipboard"
    return text


def test_copy_buttons_and_regenerate_with_another_budget(server, chromium, artifacts_dir, tmp_path):
    endpoint = RecordingEndpoint(server.url)
    app = ChatApp("--endpoint", endpoint.url, "--max-tokens", "80", "--thinking-budget", "8", data_dir=tmp_path)
    try:
        context = chromium.new_context(viewport={"width": 1100, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url.rstrip("/"))
        page = context.new_page()
        page.goto(app.url)
        page.locator("#prompt textarea").fill("Count to three")
        page.locator("#send").click()
        page.locator("#chat .options .option").first.wait_for(timeout=60_000)
        thinking, answer = endpoint.streamed(0)
        assert thinking.strip() and answer.strip()

        answer_row = page.locator("#chat .bot-row:not(:has(.thought-group))").last
        thought_row = page.locator("#chat .bot-row:has(.thought-group)").last
        assert _loose(_copied(page, answer_row)) == _loose(answer)
        copied = _loose(_copied(page, thought_row))  # the thinking has a button of its own; Gradio puts its title first
        assert copied.startswith("Thought for") and copied.endswith(_loose(thinking)) and _loose(answer) not in copied

        offered = page.locator("#chat .options .option").all_inner_texts()
        assert offered == ["↻ no thinking limit", "↻ think ≤ 64 tokens"]
        page.locator("#chat .options .option", has_text="64").click()
        deadline = time.time() + 60
        while len(endpoint.chat_requests()) < 2 and time.time() < deadline:
            time.sleep(0.2)
        page.get_by_text("(budget 64)").wait_for(timeout=60_000)
        page.locator("#chat .options .option").first.wait_for(timeout=60_000)  # offered again once done
        assert page.locator("#chat .options .option").all_inner_texts() == ["↻ no thinking limit"]
        page.screenshot(path=str(artifacts_dir / "ui-regenerated.png"), full_page=True)
        regenerated = endpoint.chat_requests()[1]
        assert regenerated["thinking_budget_tokens"] == 64
        assert regenerated["messages"] == [{"role": "user", "content": "Count to three"}]  # the old answer is replaced
        assert page.locator("#chat .user-row").count() == 1 and page.locator("#chat .thought-group").count() == 1
    finally:
        app.stop()
        endpoint.stop()
