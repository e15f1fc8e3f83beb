"""`r1-distill chat --window`: a native desktop window under a real X server (Xvfb), or the plain reason why not."""

import importlib.util
import os
import re
import subprocess
import time

import httpx
import pytest

from support import REPO, ChatApp, until

# what the app says when this machine lacks what a window needs (libraries, a webview backend)
CANNOT_HERE = r"no webview backend could start|platform plugin|shared object|cannot open display"

pytestmark = pytest.mark.slow


def _wait_for_line(path, texts: tuple[str, ...], app: ChatApp, seconds: float) -> str:
    """What the app printed once it printed one of `texts`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        out = path.read_text(errors="replace") if path.exists() else ""
        if any(text in out for text in texts):
            return out
        assert app.proc.poll() is None, f"the app exited ({app.proc.returncode}): {out[-1500:]} {app.stderr_text(1500)}"
        time.sleep(0.3)
    raise AssertionError(f"none of {texts} within {seconds} s; the app said: {path.read_text(errors='replace')[-1500:]} "
                         f"{app.stderr_text(1500)}")


def _missing_window_packages() -> list[str]:
    """dev.py's list of what Qt's xcb plugin and Qt WebEngine need from the system (and Xvfb), checked here."""
    spec = importlib.util.spec_from_file_location("r1_distill_dev", REPO / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    return dev.missing_window_packages()


@pytest.fixture
def xvfb_display():
    missing = _missing_window_packages()
    if missing:
        pytest.skip(f"missing for the desktop window: {' '.join(missing)} "
                    f"(python3 dev.py test installs them: apt-get install {' '.join(missing)})")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x960x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    assert number, "Xvfb did not report a display"
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def test_window_without_a_display_says_why_and_serves_in_the_browser(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        app = ChatApp("--endpoint", server.url + "/v1", "--window", data_dir=tmp_path, env=env, stdout=out)
        try:
            said = _wait_for_line(log, ("No desktop window",), app, 30)
            reason = "there is no display" if importlib.util.find_spec("webview") else "pywebview is not installed"
            assert reason in said and app.url in said, said
            assert "Traceback" not in said
            assert httpx.get(app.url, timeout=5).status_code == 200  # the app goes on, for a browser
        finally:
            app.stop()


@pytest.mark.skipif(importlib.util.find_spec("webview") is None,
                    reason="pywebview is not installed (pip install 'r1-distill[window]'; dev.py test installs it)")
def test_window_shows_the_app_under_xvfb(server, xvfb_display, tmp_path, artifacts_dir):
    from PIL import ImageGrab

    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        app = ChatApp("--endpoint", server.url + "/v1", "--window", data_dir=tmp_path, stdout=out,
                      env={"DISPLAY": xvfb_display, "WAYLAND_DISPLAY": ""})
        try:
            said = _wait_for_line(log, ("Desktop window open", "No desktop window"), app, 180)
            if "No desktop window" in said and re.search(CANNOT_HERE, said):
                pytest.skip(f"this machine cannot show the window: {said.strip().splitlines()[-1]}")
            assert "Desktop window open" in said and "r1-distill chat" in said, said  # the title, read in the window

            def painted():  # the app drawn: not a blank page, nor Gradio's "Loading..." (under 1% of it not white)
                shot = ImageGrab.grab(xdisplay=xvfb_display)
                window = shot.crop(shot.getbbox() or (0, 0, 1, 1))  # the black root around the window left out
                pixels = window.size[0] * window.size[1]
                background = max(window.convert("RGB").getcolors(maxcolors=pixels))[0]
                return (shot, window) if background < 0.97 * pixels else None

            painted_shot = until(painted, 60)
            assert painted_shot, "the window does not show the app"
            shot, window = painted_shot
            shot.save(artifacts_dir / "ui-window.png")
            assert window.size[0] >= 600 and window.size[1] >= 400, window.size
        finally:
            app.stop()

    def window_gone():  # it watches for its parent once a second
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return f"r1_distill.ui.window {app.url}" not in listing

    assert until(window_gone, 15), "the window outlived the app"


@pytest.mark.skipif(importlib.util.find_spec("webview") is None, reason="pywebview is not installed")
def test_window_whose_backend_cannot_start_says_why(server, xvfb_display, tmp_path):
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        # a display, but no Qt platform plugin of that name: Qt aborts the window's process
        app = ChatApp("--endpoint", server.url + "/v1", "--window", data_dir=tmp_path, stdout=out,
                      env={"DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "no-such-platform"})
        try:
            said = _wait_for_line(log, ("No desktop window",), app, 60)
            assert "before showing the app" in said and app.url in said, said
            assert httpx.get(app.url, timeout=5).status_code == 200
        finally:
            app.stop()
