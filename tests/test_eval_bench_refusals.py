"""`eval --bench NAMES`: what cannot run is refused before anything is sampled, in one line (exit 2): an unknown
benchmark (the known ones named), a LiveCodeBench window with no problem, code benchmarks without a sandbox, a
LiveCodeBench row whose private tests would run code when unpickled (which never runs)."""

import base64
import json
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

DATA = Path(__file__).parent / "data"
LCB = f"lcb={DATA / 'code_generation_lite_rows.jsonl'}"
GPQA = f"gpqa-diamond={DATA / 'gpqa_diamond_rows.jsonl'}"


class _RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _eval(tmp_path, bench, *extra, env=None):
    return subprocess.run([sys.executable, "-m", "r1_distill", "eval", "--model", str(tmp_path / "never-loaded.gguf"),
                           "--bench", bench, "--out", str(tmp_path / "out"), "--samples", "1", *extra],
                          capture_output=True, text=True, timeout=120, env=env)


def test_refusals_come_before_any_sampling(tmp_path):
    unknown = _eval(tmp_path, f"{GPQA},aime42")
    assert unknown.returncode == 2 and "unknown benchmark 'aime42'" in unknown.stderr and "aime24" in unknown.stderr
    empty = _eval(tmp_path, LCB, "--since", "2030-01-01")
    assert empty.returncode == 2 and "no problem" in empty.stderr and "contest_date" in empty.stderr
    no_sandbox = _eval(tmp_path, f"{GPQA},{LCB}", env=dict(os.environ, PATH="/nonexistent"))
    assert no_sandbox.returncode == 2 and "sandbox" in no_sandbox.stderr
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.jsonl"
    row = json.loads((DATA / "code_generation_lite_rows.jsonl").read_text().splitlines()[0])
    row["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(_RunsCode(f"touch {marker}")))).decode()
    hostile.write_text(json.dumps(row) + "\n")
    refused = _eval(tmp_path, f"lcb={hostile}")
    assert refused.returncode == 2 and "refused" in refused.stderr and "posix.system" in refused.stderr
    assert not marker.exists()
    for run in (unknown, empty, no_sandbox, refused):
        assert "Traceback" not in run.stderr
    assert not list((tmp_path / "out").glob("*/samples"))
