"""`eval --bench NAMES`: what cannot run is refused before anything is sampled, in one line (exit 2): an unknown
benchmark (the known ones named), a LiveCodeBench window with no problem, code benchmarks without a sandbox."""

import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
LCB = f"lcb={DATA / 'code_generation_lite_rows.jsonl'}"
GPQA = f"gpqa-diamond={DATA / 'gpqa_diamond_rows.jsonl'}"


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
    for run in (unknown, empty, no_sandbox):
        assert "Traceback" not in run.stderr
    assert not list((tmp_path / "out").glob("*/samples"))
