"""With --auth, saved conversations belong to the logged-in user, not the browser: a user finds theirs
from a second, fresh browser and reopens it there, and another user never sees them (real Chromium;
screenshots in test-artifacts/)."""

from types import SimpleNamespace

import pytest

from support import ChatApp, bare, until
from r1_distill.ui import history

pytestmark = pytest.mark.slow


def _log_in(browser, url: str, username: str, password: str):
    """A fresh browser context (no cookies, no localStorage) through Gradio's login page."""
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.goto(url)
    page.locator("input[data-testid=textbox]").fill(username)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#prompt textarea").wait_for(timeout=30_000)
    return page


def test_a_users_conversations_follow_them_to_another_browser_and_no_one_else_sees_them(
        server, chromium, artifacts_dir, tmp_path, monkeypatch):
    logins = tmp_path / "logins.txt"
    logins.write_text("alice:one\nbob:two\n")
    app = ChatApp("--endpoint", server.url + "/v1", "--auth", str(logins), "--max-tokens", "32",
                  "--thinking-budget", "8", data_dir=tmp_path)
    try:
        monkeypatch.setenv("R1_DISTILL_CHAT_DIR", str(tmp_path))  # the app's user-secret, to name bob's folder
        alice_key = history.owner(history.new_id(), SimpleNamespace(username="alice"))
        bob_key = history.owner(history.new_id(), SimpleNamespace(username="bob"))
        store = history.ConversationStore(tmp_path / "conversations")
        store.save(bob_key, None, [{"role": "user", "content": "Bob's own chat"}])  # shows bob's list is drawn

        first = _log_in(chromium, app.url, "alice", "one")
        first.locator("#prompt textarea").fill("Remember the number 42")
        first.locator("#send").click()
        first.locator("#chat .options .option").first.wait_for(timeout=60_000)
        answer = first.locator("#chat .bot-row:not(:has(.thought-group))").last.inner_text().strip()
        first.locator("#history").get_by_text("Remember the number 42").wait_for(timeout=10_000)
        assert "Bob's own chat" not in first.locator("#history").inner_text()
        first.context.close()

        second = _log_in(chromium, app.url, "alice", "one")  # another browser: none of the first one's storage
        second.locator("#history").get_by_text("Remember the number 42").wait_for(timeout=30_000)
        assert "Remember the number 42" not in second.locator("#chat").inner_text()  # listed, not yet open
        second.locator("#history").get_by_text("Remember the number 42").click()
        second.locator("#chat").get_by_text("Remember the number 42").wait_for(timeout=10_000)
        assert answer and until(lambda: bare(answer) in bare(second.locator("#chat").inner_text()), 10)
        assert "Bob's own chat" not in second.locator("#history").inner_text()
        second.screenshot(path=str(artifacts_dir / "ui-history-per-user-second-browser.png"), full_page=True)
        second.context.close()

        third = _log_in(chromium, app.url, "bob", "two")
        third.locator("#history").get_by_text("Bob's own chat").wait_for(timeout=30_000)
        assert "Remember the number 42" not in third.locator("#history").inner_text()
        third.screenshot(path=str(artifacts_dir / "ui-history-per-user-other-user.png"), full_page=True)
        third.context.close()

        # filed under the users' keys only (no browser's folder), names that do not say whose they are
        assert {d.name for d in (tmp_path / "conversations").iterdir()} == {alice_key, bob_key}
        assert [r["title"] for r in store.list(alice_key)] == ["Remember the number 42"]
        assert alice_key != bob_key and all(history.is_id(k) for k in (alice_key, bob_key))
    finally:
        app.stop()
