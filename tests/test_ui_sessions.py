"""Two people chat with one app at the same time, one after switching the model and a setting: neither
sees the other's messages, settings or model choice (two browser contexts, checked in both pages and
at the endpoint)."""

import time

import pytest

from support import ChatApp, RecordingEndpoint

pytestmark = pytest.mark.slow


def _pick_model(page, name: str) -> None:
    page.locator("#settings").get_by_text("Settings").click()
    page.locator("#model input").click()
    page.locator("ul[role=listbox] li", has_text=name).first.click()


def _set_temperature(page, value: str) -> None:
    box = page.locator("#temperature input[type=number]")
    box.fill(value)
    box.press("Enter")


def _settings(page) -> tuple[str, str]:
    if not page.locator("#model input").is_visible():
        page.locator("#settings").get_by_text("Settings").click()
    return page.locator("#model input").input_value(), page.locator("#temperature input[type=number]").input_value()


def test_two_sessions_never_see_each_others_chat_settings_or_model(server, tiny_gguf, chromium, artifacts_dir, tmp_path):
    endpoint = RecordingEndpoint(server.url)
    app = ChatApp("--endpoint", endpoint.url, "--model", str(tiny_gguf), "--max-tokens", "32", "--thinking-budget", "8",
                  data_dir=tmp_path)
    try:
        alice = chromium.new_context(viewport={"width": 1100, "height": 1000}).new_page()
        bob = chromium.new_context(viewport={"width": 1100, "height": 1000}).new_page()
        for page in (alice, bob):
            page.goto(app.url)
        _pick_model(bob, tiny_gguf.name)
        _set_temperature(bob, "1.3")
        time.sleep(1.0)  # the switch loads nothing new (the file is served already) but goes through the queue
        alice.locator("#prompt textarea").fill("Alice asks about apples")
        bob.locator("#prompt textarea").fill("Bob asks about bananas")
        alice.locator("#send").click()
        bob.locator("#send").click()
        for page in (alice, bob):
            page.locator("#chat .options .option").first.wait_for(timeout=60_000)  # the turn is done
        alice.screenshot(path=str(artifacts_dir / "ui-session-alice.png"), full_page=True)
        bob.screenshot(path=str(artifacts_dir / "ui-session-bob.png"), full_page=True)

        alice_chat, bob_chat = alice.locator("#chat").inner_text(), bob.locator("#chat").inner_text()
        assert "Alice asks about apples" in alice_chat and "Bob" not in alice_chat
        assert "Bob asks about bananas" in bob_chat and "Alice" not in bob_chat
        assert "Alice" not in bob.locator("#history").inner_text()
        assert "Bob" not in alice.locator("#history").inner_text()
        assert _settings(alice) == (endpoint.url, "0.6")
        assert _settings(bob) == (str(tiny_gguf), "1.3")
        # at the endpoint: Alice's turn came with her temperature, Bob's went to the model he picked
        sent = [r for r in endpoint.chat_requests() if "Alice" in r["messages"][-1]["content"]]
        assert len(sent) == 1 and sent[0]["temperature"] == 0.6
        assert not [r for r in endpoint.chat_requests() if "Bob" in str(r["messages"])]
    finally:
        app.stop()
        endpoint.stop()


def test_a_model_server_a_turn_streams_from_is_never_stopped_for_another_pick(tiny_gguf, tmp_path):
    import shutil

    import httpx

    from r1_distill.errors import UserError
    from r1_distill.ui.models import ModelChoices

    other = tmp_path / "other.gguf"
    shutil.copy(tiny_gguf, other)
    choices = ModelChoices([], [str(tiny_gguf), str(other)], public=False, search_dirs=[])
    choices.pool.limit = 1
    try:
        with choices.turn(str(tiny_gguf)) as busy:  # loaded before the turn gets its address
            assert httpx.get(busy.replace("/v1", "/health")).status_code == 200
            with pytest.raises(UserError, match="answering other chats"):
                choices.endpoint_for(str(other))
            assert httpx.get(busy.replace("/v1", "/health")).status_code == 200
        assert httpx.get(choices.endpoint_for(str(other)).replace("/v1", "/health")).status_code == 200
        with pytest.raises(httpx.HTTPError):  # the idle one made room
            httpx.get(busy.replace("/v1", "/health"))
    finally:
        choices.pool.stop_all()
