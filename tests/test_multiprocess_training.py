"""`accelerate launch --num_processes 2` training for real, on the CPU (DDP over gloo), from a hub base:
the run saves once (on the main process), its model equals a single-process run on the same data within
float tolerance, and a SIGKILL of the whole launch mid-run resumes.

Every Python-level write into the output folder is recorded with the rank that made it (tests/launching.py)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launching import environment, kill_launch, weights, write_gsm8k_traces
from launching import writes as written_by
from r1_distill.serve.process import free_port

pytestmark = pytest.mark.slow

STUDENT = "tiny-llama-3.1"


@pytest.fixture(scope="module")
def traces(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("ddp")
    write_gsm8k_traces(root, data_dir, 8)
    return root


def _command(traces: Path, out: Path, processes: int, *extra: str) -> list[str]:
    train = ["-m", "r1_distill", "train", "--student", STUDENT, "--traces", str(traces / "kept.jsonl"), "--out",
             str(out), "--max-length", "400", "--per-device-batch", "4", "--effective-batch", "8", "--lr", "1e-3",
             *extra]
    if processes == 1:
        return [sys.executable, *train]
    launcher = str(Path(sys.executable).with_name("accelerate"))
    return [launcher, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()), *train]


def _env(traces: Path, out: Path) -> dict:
    return environment(traces / "site", out)


def test_two_processes_save_once_and_match_one_process(traces, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    for out, n in ((single, 1), (multi, 2)):
        run = subprocess.run(_command(traces, out, n, "--epochs", "4", "--save-steps", "1000"), env=_env(traces, out),
                             capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
    writes = written_by(multi)
    assert writes and {rank for rank, _ in writes} == {"0"}, writes  # the other rank wrote nothing
    written = [Path(p).name for _, p in writes]
    for name in ("manifest.json", "README.md", "loss.png", "config.json", "tokenizer_config.json", "generation_config.json"):
        assert name in written, name
    assert written.count("manifest.json") == 1 and written.count("config.json") == 1
    manifest = json.loads((multi / "manifest.json").read_text())
    assert manifest["metrics"]["processes"] == 2 and manifest["metrics"]["steps"] == 4

    base_dir = Path(json.loads((single / "manifest.json").read_text())["inputs"]["base"])
    one, two, base = weights(single), weights(multi), weights(base_dir)
    moved = sum(float((one[k] - base[k]).norm() ** 2) for k in one) ** 0.5
    apart = sum(float((one[k] - two[k]).norm() ** 2) for k in one) ** 0.5
    assert moved > 0.01 and apart < 0.05 * moved, (moved, apart)  # same global batches, same updates


def test_two_process_run_killed_mid_run_resumes(traces, tmp_path):
    out = tmp_path / "killed"
    cmd = _command(traces, out, 2, "--epochs", "6", "--save-steps", "2")
    proc = subprocess.Popen(cmd, env=_env(traces, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ready = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.time() + 600
    while not ready.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    kill_launch(proc)  # the launcher and both workers
    assert not (out / "manifest.json").exists()
    done = subprocess.run(cmd + ["--resume"], env=_env(traces, out), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    assert metrics["resumed"] and metrics["resumed_from_step"] >= 2 and metrics["steps"] == 6
    steps = [h["step"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]
    assert steps == sorted(set(steps)) and steps[-1] == 6
