"""Shared with others: a non-local --host asks for the --auth login and offers only the models the
command line named, refusing any other a client sends; bad --auth values get one clear line."""

import os
import socket
import subprocess
import sys

import httpx
import pytest

from support import ChatApp
from r1_distill.cli import main
from r1_distill.errors import UserError
from r1_distill.ui.access import parse_auth

pytestmark = pytest.mark.slow


def test_auth_values(tmp_path):
    assert parse_auth("alice:pa:ss") == [("alice", "pa:ss")]
    logins = tmp_path / "logins.txt"
    logins.write_text("# people\nalice:one\n\nbob:two\n")
    assert parse_auth(str(logins)) == [("alice", "one"), ("bob", "two")]
    logins.write_text("alice:one\nbobsecretpw\n")
    with pytest.raises(UserError, match="entry 2 is not USER:PASSWORD") as bad:
        parse_auth(str(logins))
    assert "bobsecretpw" not in str(bad.value)  # what may be a password is never echoed
    with pytest.raises(UserError, match="the value has no ':'") as bad:
        parse_auth("bobsecretpw")
    assert "bobsecretpw" not in str(bad.value)


def test_bad_auth_is_one_line_and_exit_2(capsys):
    assert main(["chat", "--endpoint", "http://127.0.0.1:9/v1", "--auth", "bobsecretpw"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --auth: the value has no ':'") and "Traceback" not in err
    assert "bobsecretpw" not in err


def test_busy_port_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "r1_distill", "chat", "--endpoint", "http://127.0.0.1:9/v1",
                               "--port", str(port), "--no-browser"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "R1_DISTILL_CHAT_DIR": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: port {port} is in use on 127.0.0.1: pass --port") and \
        done.stderr.count("\n") == 1, done.stderr
    assert "Chat app on" not in done.stdout


def test_host_not_of_this_machine_is_one_line_and_exit_2(capsys):
    assert main(["chat", "--endpoint", "http://127.0.0.1:9/v1", "--host", "192.0.2.1", "--no-browser"]) == 2
    err = capsys.readouterr().err  # 192.0.2.1: an address set apart for documentation, nobody's
    assert err.count("\n") == 1 and err.startswith("error: --host 192.0.2.1 is not an address of this machine"), err


def test_shared_app_asks_for_login_and_offers_only_the_named_model(server, tmp_path):
    from gradio_client import Client

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "stray.gguf").write_bytes(b"GGUF")  # a local mode would offer it
    endpoint = server.url + "/v1"
    app = ChatApp("--endpoint", endpoint, "--auth", "alice:secret", "--max-tokens", "16", host="127.0.0.2",
                  data_dir=tmp_path, cwd=tmp_path)
    try:
        assert httpx.get(app.url + "config").status_code == 401
        assert httpx.post(app.url + "login", data={"username": "alice", "password": "wrong"}).status_code >= 400
        with httpx.Client() as browser:
            assert browser.post(app.url + "login", data={"username": "alice", "password": "secret"}).status_code == 200
            config = browser.get(app.url + "config").json()
        picker = next(c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == "model")
        assert [c[1] for c in picker["choices"]] == [endpoint] and not picker["allow_custom_value"]

        client = Client(app.url, auth=("alice", "secret"), verbose=False)
        history, _ = client.predict("Hello?", [], 0.6, 0.95, 16, 4, endpoint, api_name="/chat")
        assert history[-1]["role"] == "assistant" and "⚠️" not in str(history[-1]["content"])
        try:
            forged, _ = client.predict("Load my file", [], 0.6, 0.95, 16, 0, str(tmp_path / "runs" / "stray.gguf"),
                                       api_name="/chat")
            refused = "not offered by this app" in str(forged[-1]["content"])
        except Exception as exc:  # Gradio's own check of a dropdown's value may refuse it first
            refused = "not in the list of choices" in str(exc) or "not offered" in str(exc)
        assert refused, "a value outside the picker's list was used"
    finally:
        app.stop()


def test_public_choices_refuse_what_the_command_line_did_not_name(tmp_path):
    from r1_distill.ui.models import ModelChoices

    (tmp_path / "found.gguf").write_bytes(b"GGUF")
    named = "http://127.0.0.1:9/v1"
    public = ModelChoices([named], [], public=True, search_dirs=[str(tmp_path)])
    assert public.offered == [named] and public.endpoint_for(named) == named
    for forged in ("http://elsewhere.example/v1", str(tmp_path / "found.gguf")):
        with pytest.raises(UserError, match="not offered by this app"):
            public.endpoint_for(forged)
    local = ModelChoices([named], [], public=False, search_dirs=[str(tmp_path)])
    assert local.offered == [named, str(tmp_path / "found.gguf")]
    assert local.endpoint_for("http://elsewhere.example/v1") == "http://elsewhere.example/v1"
    with pytest.raises(UserError, match="neither a .gguf file nor an http"):
        local.endpoint_for("notes.txt")
