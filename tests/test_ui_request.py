"""What the endpoint receives from the chat app in a real browser: only user turns and final answers,
never an error note or an earlier turn's thinking, after the endpoint was down and a turn was retried."""

import time

import pytest

from support import ChatApp, RecordingEndpoint

pytestmark = pytest.mark.slow


def _send(page, text: str) -> None:
    _mark_old_options(page)
    page.locator("#prompt textarea").fill(text)
    page.locator("#send").click()


def _mark_old_options(page) -> None:
    """Marks the regenerate options on the page now: _wait_done waits for new ones."""
    page.evaluate("document.querySelectorAll('#chat .options .option').forEach(o => o.dataset.old = '1')")


def _wait_requests(endpoint: RecordingEndpoint, count: int) -> list[dict]:
    deadline = time.time() + 60
    while len(endpoint.chat_requests()) < count and time.time() < deadline:
        time.sleep(0.2)
    assert len(endpoint.chat_requests()) == count, endpoint.chat_requests()
    return endpoint.chat_requests()


def _wait_done(page, thoughts: int) -> None:
    """The turn sent since _mark_old_options is done: it offers to regenerate under its answer (a turn
    removes the old options when it starts, so a finished one shows new ones), with `thoughts` thoughts on the page."""
    page.locator("#chat .options .option:not([data-old])").first.wait_for(timeout=60_000)
    assert page.locator("#chat .options .option[data-old]").count() == 0
    assert page.locator("#chat .thought-group").count() == thoughts


def test_endpoint_gets_only_real_turns_after_an_error_and_a_retry(server, chromium, artifacts_dir, tmp_path):
    endpoint = RecordingEndpoint(server.url)
    app = ChatApp("--endpoint", endpoint.url, "--max-tokens", "40", "--thinking-budget", "8", data_dir=tmp_path)
    try:
        page = chromium.new_page(viewport={"width": 1100, "height": 1000})
        page.goto(app.url)
        _send(page, "First question")
        _wait_done(page, 1)
        thinking, first_answer = endpoint.streamed(0)
        assert thinking.strip(), "the model did not think: the test could not tell thinking from answers"

        endpoint.stop()
        _send(page, "Second question")
        page.get_by_text("Cannot reach the model").wait_for(timeout=30_000)
        endpoint.start()

        _send(page, "Third question")  # the error note is still on screen, above this turn
        _wait_done(page, 2)
        after_error = _wait_requests(endpoint, 2)[-1]["messages"]
        _mark_old_options(page)
        assert page.locator("#chat .options .option[data-old]").count() > 0  # the third turn's, marked
        page.locator("#retry").click()
        _wait_requests(endpoint, 3)
        _wait_done(page, 2)  # the retried turn replaced the third one
        page.screenshot(path=str(artifacts_dir / "ui-request-after-retry.png"), full_page=True)
        retried = endpoint.chat_requests()[-1]["messages"]
        assert "Cannot reach the model" in page.locator("#chat").inner_text()
    finally:
        app.stop()
        endpoint.stop()

    expected = [("user", "First question"), ("assistant", first_answer), ("user", "Second question"),
                ("user", "Third question")]
    for messages in (after_error, retried):
        # whitespace compared loosely: Gradio's page hands a tab back as spaces
        assert [(m["role"], " ".join(m["content"].split())) for m in messages] == \
            [(role, " ".join(text.split())) for role, text in expected]
        for m in messages:
            assert "⚠️" not in m["content"] and "Cannot reach" not in m["content"], m
            assert thinking.strip() not in m["content"], "an earlier turn's thinking went back to the model"
