"""Saved conversations: a chat survives a page reload and an app restart, is reopened from the side
list, renamed and deleted (real Chromium; screenshots in test-artifacts/)."""


import pytest
from playwright.sync_api import expect

from support import ChatApp, bare, until
from r1_distill.errors import UserError
from r1_distill.ui import history

pytestmark = pytest.mark.slow


def test_store_keeps_each_browser_apart_newest_first_and_renames_stick(tmp_path):
    store = history.ConversationStore(tmp_path)
    me, someone = history.new_id(), history.new_id()
    messages = [{"role": "user", "content": "What is  2+2?\n"}, {"role": "assistant", "content": "4"}]
    first = store.save(me, None, messages)
    assert store.save(me, None, []) is None  # an empty chat is not saved
    second = store.save(me, None, [{"role": "user", "content": "x" * 100}])
    assert [r["title"] for r in store.list(me)] == ["x" * 59 + "…", "What is 2+2?"] and store.list(someone) == []
    store.rename(me, first, "  Sums ")
    store.save(me, first, messages + [{"role": "user", "content": "and 3+3?"}])
    assert history.list_choices(store.list(me)) == [("Sums", first), ("x" * 59 + "…", second)]  # a renamed title stays
    assert store.load(me, first)["messages"][-1]["content"] == "and 3+3?" and store.load(someone, first) is None
    store.delete(me, first)
    assert [r["id"] for r in store.list(me)] == [second]
    with pytest.raises(UserError, match="type a title"):
        store.rename(me, second, "   ")
    with pytest.raises(UserError, match="not one this app made"):  # ids come from browsers: no paths
        store.save("../../etc", None, messages)


def test_store_refuses_ids_it_did_not_make_and_conversations_too_big(tmp_path, monkeypatch):
    store = history.ConversationStore(tmp_path)
    me = history.new_id()
    assert store.load("../../etc", me) is None and store.load(me, "passwd") is None  # what a browser sent: no error
    with pytest.raises(UserError, match="not one this app made"):
        store.delete(me, "../x")
    monkeypatch.setattr(history, "MAX_SAVED_BYTES", 1000)
    kept = store.save(me, None, [{"role": "user", "content": "short"}])
    with pytest.raises(UserError, match="no longer saved"):
        store.save(me, kept, [{"role": "user", "content": "short"}, {"role": "assistant", "content": "x" * 2000}])
    assert store.load(me, kept)["messages"] == [{"role": "user", "content": "short"}]


def test_browser_secret_outlives_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("R1_DISTILL_CHAT_DIR", str(tmp_path))
    secret = history.browser_secret()
    assert history.browser_secret() == secret and (tmp_path / "browser-secret").stat().st_mode & 0o077 == 0


def _list(page) -> str:
    return page.locator("#history").inner_text()


def test_conversation_survives_reload_and_restart_and_reopens_from_the_list(server, chromium, artifacts_dir, tmp_path):
    args = ("--endpoint", server.url + "/v1", "--max-tokens", "32", "--thinking-budget", "8")
    app = ChatApp(*args, data_dir=tmp_path)
    try:
        page = chromium.new_context(viewport={"width": 1100, "height": 900}).new_page()
        page.goto(app.url)
        page.locator("#prompt textarea").fill("Remember the number 42")
        page.locator("#send").click()
        page.locator("#chat .options .option").first.wait_for(timeout=60_000)
        answer = page.locator("#chat .bot-row:not(:has(.thought-group))").last.inner_text().strip()
        page.locator("#history").get_by_text("Remember the number 42").wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts_dir / "ui-history-before-reload.png"), full_page=True)

        page.reload()
        page.locator("#history").get_by_text("Remember the number 42").wait_for(timeout=30_000)
        assert "Remember the number 42" not in page.locator("#chat").inner_text()  # a new chat, the old one listed
        page.locator("#history").get_by_text("Remember the number 42").click()
        page.locator("#chat").get_by_text("Remember the number 42").wait_for(timeout=10_000)
        assert answer and until(lambda: bare(answer) in bare(page.locator("#chat").inner_text()), 10)
        assert "Thought for" in page.locator("#chat").inner_text()
        page.screenshot(path=str(artifacts_dir / "ui-history-reopened.png"), full_page=True)

        page.locator("#manage").get_by_text("Rename or delete").click()
        page.locator("#title input, #title textarea").first.fill("The answer chat")
        page.locator("#rename").click()
        page.locator("#history").get_by_text("The answer chat").wait_for(timeout=10_000)

        app.stop()  # a new process, a new Gradio: the same saved list on the same address
        (browser_id,) = [d.name for d in (tmp_path / "conversations").iterdir()]
        history.ConversationStore(tmp_path / "conversations").save(
            browser_id, None, [{"role": "user", "content": "Keep this one"}])  # still listed after the delete below
        app = ChatApp(*args, port=app.port, data_dir=tmp_path)
        page.reload()
        page.locator("#history").get_by_text("The answer chat").wait_for(timeout=30_000)
        page.locator("#history").get_by_text("Keep this one").wait_for(timeout=10_000)
        assert "Remember the number 42" not in _list(page)
        page.locator("#history").get_by_text("The answer chat").click()
        page.locator("#chat").get_by_text("Remember the number 42").wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts_dir / "ui-history-after-restart.png"), full_page=True)

        page.locator("#manage").get_by_text("Rename or delete").click()
        page.locator("#delete").click()
        expect(page.locator("#history")).not_to_contain_text("The answer chat", timeout=10_000)
        assert "Keep this one" in _list(page) and "Remember" not in page.locator("#chat").inner_text()
        page.reload()
        page.locator("#history").get_by_text("Keep this one").wait_for(timeout=30_000)  # the list is drawn
        assert "The answer chat" not in _list(page)
    finally:
        app.stop()
