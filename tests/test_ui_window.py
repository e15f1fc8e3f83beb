"""`r1-distill chat --window`: a native desktop window under a real X server (Xvfb), or the plain reason why not."""

import importlib.util
import os
import shutil
import subprocess
import time

import httpx
import pytest

from conftest import ChatApp

pytestmark = pytest.mark.slow


def _wait_for_line(path, text: str, proc, seconds: float) -> str:
    deadline = time.time() + seconds
    while time.time() < deadline:
        out = path.read_text(errors="replace") if path.exists() else ""
        if text in out:
            return out
        assert proc.poll() is None, f"the app exited ({proc.returncode}): {out[-1500:]} {proc.stderr.read().decode()[-1500:]}"
        time.sleep(0.3)
    raise AssertionError(f"no {text!r} within {seconds} s; the app said: {path.read_text(errors='replace')[-1500:]}")


@pytest.fixture
def xvfb_display():
    import ctypes.util

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (python3 dev.py test installs it: apt-get install xvfb)")
    if not (ctypes.util.find_library("xcb-icccm") and ctypes.util.find_library("xcb-cursor")):
        pytest.skip("the X libraries Qt's xcb plugin loads are missing (python3 dev.py test installs them: "
                    "apt-get install libxcb-icccm4 libxcb-cursor0 libxcb-keysyms1 ...)")
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
            said = _wait_for_line(log, "No desktop window", app.proc, 30)
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
            said = _wait_for_line(log, "Desktop window open", app.proc, 90)
            assert "r1-distill chat" in said, said  # the page's own title, read inside the window
            time.sleep(2.0)  # the first paint after the load event
            shot = ImageGrab.grab(xdisplay=xvfb_display)
            shot.save(artifacts_dir / "ui-window.png")
            window = shot.crop(shot.getbbox() or (0, 0, 1, 1))  # the black root around the window left out
            assert window.size[0] >= 600 and window.size[1] >= 400, window.size
            colours = window.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 20, "the window is blank"
        finally:
            app.stop()
    assert app.proc.returncode is not None
    time.sleep(1.5)
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"r1_distill.ui.window {app.url}" not in listing, "the window outlived the app"



@pytest.mark.skipif(importlib.util.find_spec("webview") is None, reason="pywebview is not installed")
def test_window_whose_backend_cannot_start_says_why(server, xvfb_display, tmp_path):
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        # a display, but no Qt platform plugin of that name: Qt aborts the window's process
        app = ChatApp("--endpoint", server.url + "/v1", "--window", data_dir=tmp_path, stdout=out,
                      env={"DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "no-such-platform"})
        try:
            said = _wait_for_line(log, "No desktop window", app.proc, 60)
            assert "before showing the app" in said and app.url in said, said
            assert httpx.get(app.url, timeout=5).status_code == 200
        finally:
            app.stop()
