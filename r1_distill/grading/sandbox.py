"""Run untrusted code in a local sandbox built on bubblewrap (`bwrap`, Debian's `bubblewrap`).

What the program gets:
* the system read-only (`/usr` and its `/bin`, `/lib` links; no `/etc`, `/home`, `/root`, `/work`),
  its own files read-only at /code, a private writable /tmp (tmpfs, capped) as its working folder;
* no network (its own empty network namespace), its own pid, IPC, UTS and user namespaces, a new
  session (no terminal to write to), no host environment variables (`--clearenv`, a bare PATH);
* limits: CPU seconds, address space, processes (RLIMIT_NPROC, which counts per user and exempts
  root: as root, each sandbox runs as an unprivileged uid of its own, so a fork bomb in one cannot
  starve the sandboxes beside it), size of any file it writes (stdout and
  stderr are files, so output is capped), and a wall clock, past which the whole process group is
  killed; the sandbox dies with its parent (`--die-with-parent`), and with it every process of its
  pid namespace.

`run_sandboxed` never raises for what the program does: it returns a :class:`RunResult` whose
`reason` names the limit that stopped it.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

SANDBOX_UID_BASE = 200_000  # sandboxes run as uids from here up: no two running ones share one
_UIDS_PER_PROCESS = 16
_runs = 0


def _sandbox_uid() -> int:
    """A uid of its own for each run: this process's pid picks a block of 16, runs cycle through it, so
    neither a sandbox beside it nor the zombies a fork bomb leaves for a moment eat its process allowance."""
    global _runs
    _runs += 1
    return SANDBOX_UID_BASE + os.getpid() * _UIDS_PER_PROCESS + _runs % _UIDS_PER_PROCESS
PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 2
    wall_s: float = 6.0
    memory_mb: int = 512
    processes: int = 16
    output_kb: int = 1024
    tmp_mb: int = 64


@dataclass
class RunResult:
    exit_code: Optional[int]  # None when killed for the wall clock
    stdout: str
    stderr: str
    seconds: float
    reason: str  # "" when it exited on its own with code 0
    limits: Limits = field(default_factory=Limits)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.reason


def bwrap_path() -> Optional[str]:
    return shutil.which("bwrap")


def interpreter() -> str:
    """The system's python3 (under the read-only /usr): the sandbox sees nothing of our venv."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists():
            return candidate
    raise RuntimeError("no python3 under /usr for the sandbox: apt-get install -y python3")


class SandboxUnavailable(RuntimeError):
    pass


def _bwrap_argv(code_dir: Path, argv: list[str], limits: Limits) -> list[str]:
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap")
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "lib32", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            cmd += ["--ro-bind", str(path), f"/{name}"]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_mb << 20), "--tmpfs", "/tmp",
            "--ro-bind", str(code_dir), "/code", "--chdir", "/tmp", "--clearenv", "--setenv", "PATH", PATH,
            "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    if os.geteuid() == 0:
        cmd += ["--cap-drop", "ALL"]
    return cmd + ["--", *argv]


def _own_processes() -> int:
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def _reap(uid: int, within_s: float = 5.0) -> None:
    """Kill whatever still runs as the sandbox's uid (a fork bomb's children can outlive its pid 1 for a
    moment). Zombies are dead already: the host's init collects them."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        alive = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.append(int(entry.name))
                except (OSError, IndexError):
                    pass
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)


def _limits_hook(limits: Limits, nproc: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        memory = limits.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        output = limits.output_kb << 10
        resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_sandboxed(files: dict[str, str], argv: list[str], stdin: str = "", limits: Limits = Limits()) -> RunResult:
    """Write `files` to a fresh folder (read-only at /code inside), run `argv` in the sandbox with
    `stdin`, and report how it ended."""
    with tempfile.TemporaryDirectory(prefix="r1-sandbox-") as tmp:
        root = Path(tmp)
        code_dir = root / "code"
        code_dir.mkdir()
        for name, text in files.items():
            (code_dir / name).write_text(text, encoding="utf-8")
        (root / "stdin").write_text(stdin, encoding="utf-8")
        uid = _sandbox_uid() if os.geteuid() == 0 else None
        if uid is not None:  # the files must be readable by that uid; nothing of ours is writable to it
            os.chmod(root, 0o755)
            os.chmod(code_dir, 0o755)
        # bwrap itself and its pid-namespace init count against RLIMIT_NPROC too
        nproc = limits.processes + 2 + (0 if uid is not None else _own_processes())
        cmd = _bwrap_argv(code_dir, argv, limits)
        started = time.monotonic()
        with open(root / "stdin", "rb") as fin, open(root / "stdout", "wb") as fout, open(root / "stderr", "wb") as ferr:
            proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, start_new_session=True,
                                    preexec_fn=_limits_hook(limits, nproc), close_fds=True, env={"PATH": PATH},
                                    **({"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}))
            try:
                code: Optional[int] = proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                code = None
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if uid is not None:
            _reap(uid)
        seconds = time.monotonic() - started
        stdout = (root / "stdout").read_bytes()[: limits.output_kb << 10].decode("utf-8", "replace")
        stderr = (root / "stderr").read_bytes()[-4000:].decode("utf-8", "replace")
    return RunResult(exit_code=code, stdout=stdout, stderr=stderr, seconds=seconds,
                     reason=_reason(code, stderr, limits), limits=limits)


def run_python(program: str, stdin: str = "", limits: Limits = Limits()) -> RunResult:
    """One Python program (/code/main.py) on the system's python3 in the sandbox: the code check's
    runner here, in the form the remote ones take (:mod:`r1_distill.grading.remote`)."""
    return run_sandboxed({"main.py": program}, [interpreter(), "-I", "/code/main.py"], stdin=stdin, limits=limits)


def _reason(code: Optional[int], stderr: str, limits: Limits) -> str:
    if code is None:
        return f"wall-clock limit: still running after {limits.wall_s:g} s, killed"
    if code == 0:
        return ""
    sig = -code if code < 0 else code - 128 if code > 128 else None
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and "MemoryError" not in stderr):
        return f"CPU time limit: over {limits.cpu_s} s of CPU, killed"
    if sig == signal.SIGXFSZ or "File too large" in stderr:  # Python ignores SIGXFSZ and raises instead
        return f"output limit: wrote more than {limits.output_kb} KiB, killed"
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return f"memory limit: over {limits.memory_mb} MiB ({last[:120]})"
    if "Resource temporarily unavailable" in stderr or "BlockingIOError" in stderr:
        return f"process limit: more than {limits.processes} processes ({last[:120]})"
    if sig is not None and sig > 0:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}" + (f" ({last[:120]})" if last else "")
    return f"exit code {code}" + (f": {last[:200]}" if last else "")
