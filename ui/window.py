"""`r1-distill chat --window`: the app in a native desktop window (pywebview), else the reason why not.

The window runs in a child process (`python -m r1_distill.ui.window URL TITLE STORAGE`): a webview
backend that cannot start (no display, Qt's platform plugin missing) may abort its whole process,
and the app must survive that to fall back to the browser.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

SHOWN = "r1-window-shown:"
APP_DRAWN = "#prompt textarea"  # the app's prompt box: Gradio's loading screen is a .gradio-container already
FAILED = "r1-window-error:"


def unavailable_reason() -> Optional[str]:
    """Why no window can open here, checked before trying; None when it may."""
    if importlib.util.find_spec("webview") is None:
        return "pywebview is not installed (pip install 'r1-distill[window]')"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no display ($DISPLAY and $WAYLAND_DISPLAY are unset)"
    return None


def open_window(url: str, title: str, storage: Path) -> Optional[str]:
    """Show the app until its window is closed: None then; the reason when it could not be shown."""
    reason = unavailable_reason()
    if reason:
        return reason
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")  # Qt WebEngine's Chromium refuses root with its sandbox on
    # stderr to a file: Qt WebEngine logs a lot there, and a full pipe nobody reads would freeze the window
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "r1_distill.ui.window", url, title, str(storage)], env=env,
                                 stdout=subprocess.PIPE, stderr=stderr, text=True)
        shown, failure = False, None
        for line in child.stdout:
            if line.startswith(SHOWN) and not shown:
                shown = True
                print(f"Desktop window open ({line[len(SHOWN):].strip()}): close it to quit", flush=True)
            elif line.startswith(FAILED):
                failure = line[len(FAILED):].strip()
        code = child.wait()
        stderr.seek(0)
        lines = [ln.strip() for ln in stderr.read().splitlines() if ln.strip()]
    if shown or (code == 0 and not failure):  # closed by its user (maybe before the page had loaded)
        return None
    if failure:
        return f"no webview backend could start ({failure})"
    telling = [ln for ln in lines if re.search(r"error|fail|could not|cannot", ln, re.I)] or lines
    said = telling[-1][-300:] if telling else "no message"
    return f"the window process exited with code {code} before showing the app ({said})"


def _exit_with_parent() -> None:
    """A window left behind by an app that was killed would show a dead page: close with it."""
    import threading
    import time

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _run_window(url: str, title: str, storage: str) -> int:
    import time

    _exit_with_parent()
    try:
        import webview

        window = webview.create_window(title, url, width=1200, height=900, min_size=(640, 480))

        def loaded():
            # Gradio renders after the load event: wait for its app to be on the page, however long a busy
            # machine takes, while the window is open
            while not window.events.closed.is_set():
                page_title = window.evaluate_js(f"document.querySelector('{APP_DRAWN}') ? document.title : ''")
                if page_title:
                    print(f"{SHOWN} {webview.renderer}: {page_title}", flush=True)
                    return
                time.sleep(0.25)

        window.events.loaded += loaded
        Path(storage).mkdir(parents=True, exist_ok=True)
        # not private: localStorage (the saved conversations) must outlive the window
        webview.start(private_mode=False, storage_path=storage)
        return 0
    except Exception as exc:
        print(f"{FAILED} {type(exc).__name__}: {' '.join(str(exc).split())}", flush=True)
        return 3


if __name__ == "__main__":
    code = _run_window(*sys.argv[1:4])
    sys.stdout.flush()
    os._exit(code)  # not waiting for a page check that the closed window left hanging
