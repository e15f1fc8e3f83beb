"""Multi-process training launches for the tests, as users run them: `accelerate launch` with the shipped
configs (DDP, DeepSpeed ZeRO-3, FSDP2), on CPU workers over gloo.

A shipped config runs here as a copy with `use_cpu: true`, `num_processes: 2` and no mixed precision (the CPU
has no bf16 autocast to speak of); never with accelerate's `--cpu` flag, which drops DeepSpeed and FSDP and
starts one plain process.

Every Python-level write into the output folder is recorded with the rank that made it by an audit hook (a
sitecustomize on PYTHONPATH, which the workers inherit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import r1_distill.distill
from r1_distill.server_process import free_port
from r1_distill.traces import TraceRecord, write_traces

SHIPPED_CONFIGS = Path(r1_distill.distill.__file__).parent / "accelerate"
AUDIT = '''
import os, sys
_out, _log = os.environ.get("R1_TEST_WATCH"), os.environ.get("R1_TEST_WRITES")
def _hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[1] and any(c in args[1] for c in "wax+"):
        path = args[0]
    elif event == "os.rename":
        path = str(args[1])
    else:
        return
    if _out and path.startswith(_out + os.sep) and "/checkpoints/" not in path:
        fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # an "open" event without a mode: not recorded
        os.write(fd, (os.environ.get("RANK", "single") + " " + path + "\\n").encode())
        os.close(fd)
if _out:
    sys.addaudithook(_hook)
_fast = os.environ.get("R1_TEST_FAST_CLOCK_RANK")
if _fast is not None and os.environ.get("RANK") == _fast:
    import time
    _monotonic = time.monotonic
    time.monotonic = lambda: 3 * _monotonic()  # this worker's clock runs three times as fast as the others'
'''


def write_gsm8k_traces(folder: Path, data_dir: Path, n: int) -> Path:
    """n kept traces from GSM8K's worked solutions, and the audit hook's site folder beside them."""
    audit_site(folder)
    rows = [json.loads(line) for line in (data_dir / "gsm8k_train.jsonl").read_text().splitlines()[:n]]
    write_traces(folder / "kept.jsonl", [TraceRecord.from_completion(
        problem_id=r["id"], problem=r["problem"], reference_answer=r["answer"], sample_index=0, teacher="ref",
        backend="ref", kept=True, finish_reason="stop",
        completion=f"{r['solution'].split('####')[0].strip()}\n</think>\n\nThe answer is \\boxed{{{r['answer']}}}.")
        for r in rows])
    return folder / "kept.jsonl"


def audit_site(folder: Path) -> Path:
    """folder/site with the audit hook's sitecustomize.py: put it on the workers' PYTHONPATH (`environment`)."""
    (folder / "site").mkdir(exist_ok=True)
    (folder / "site" / "sitecustomize.py").write_text(AUDIT)
    return folder / "site"


def cpu_copy(name: str, folder: Path) -> Path:
    """The shipped accelerate config `name` as it runs on this CPU: 2 workers, use_cpu, no mixed precision."""
    config = yaml.safe_load((SHIPPED_CONFIGS / f"{name}.yaml").read_text())
    config.update(use_cpu=True, num_processes=2, mixed_precision="no")
    path = folder / f"{name}-cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def launch(config: Path | None, stage_args: list[str]) -> list[str]:
    """The command line: `accelerate launch --config_file CONFIG -m r1_distill ...`, or one process without CONFIG."""
    if config is None:
        return [sys.executable, "-m", "r1_distill", *stage_args]
    launcher = str(Path(sys.executable).with_name("accelerate"))
    return [launcher, "launch", "--config_file", str(config), "--main_process_port", str(free_port()),
            "-m", "r1_distill", *stage_args]


def environment(site: Path, out: Path, **extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "R1_TEST_WATCH": str(out), "R1_TEST_WRITES": str(out.parent / f"{out.name}.writes"), "OMP_NUM_THREADS": "1",
            **extra}


def run(command: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return done


def writes(out: Path) -> list[tuple[str, str]]:
    """(rank, path) of every write into `out` outside checkpoints/, in order."""
    log = out.parent / f"{out.name}.writes"
    return [tuple(line.split(" ", 1)) for line in log.read_text().splitlines()] if log.exists() else []


def assert_saved_once_by_main(out: Path) -> None:
    """Only rank 0 wrote the model folder: the model's config and the manifest once each, the tokenizer. (The
    weights are written by safetensors' own code, which the audit hook does not see: they are checked by loading
    them; tokenizer_config.json may be amended once for llama.cpp's converter, files.carry_tokenizer_files.)"""
    found = writes(out)
    assert found and {rank for rank, _ in found} == {"0"}, found
    written = [str(Path(p).relative_to(out)) for _, p in found]
    for name in ("manifest.json", "config.json"):
        assert written.count(name) == 1, (name, written)
    assert "tokenizer_config.json" in written and (out / "model.safetensors").is_file()


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}


def distance(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), set(a) ^ set(b)
    return sum(float((a[k] - b[k]).norm() ** 2) for k in a) ** 0.5


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def train_args(method: str, traces: Path, out: Path, *extra: str) -> list[str]:
    """`train` on tiny-llama-3.1 (Llama 3.1's tokenizer as the hub ships it): 4 traces, 2 a worker, 4 a step."""
    lr = "1e-3" if method == "full" else "1e-2"
    return ["train", "--student", "tiny-llama-3.1", "--method", method, "--traces", str(traces), "--out", str(out),
            "--max-length", "400", "--per-device-batch", "2", "--effective-batch", "4", "--lr", lr, *extra]


@pytest.fixture(scope="session")
def one_process_runs(tmp_path_factory, data_dir, fixtures_path):
    """reference(method, epochs): the one-process reference of `train_args` on the same 4 traces, made once a session."""
    root = tmp_path_factory.mktemp("one-process")
    traces = write_gsm8k_traces(root, data_dir, 4)
    done = {}

    def reference(method: str, epochs: int) -> Path:
        out = root / f"{method}-{epochs}"
        if (method, epochs) not in done:
            run(launch(None, train_args(method, traces, out, "--epochs", str(epochs), "--save-steps", "1000")),
                environment(root / "site", out))
            done[method, epochs] = out
        return out

    reference.traces = traces
    return reference


def assert_matches_one_process(multi: Path, single: Path) -> None:
    """The multi-process model moved from its base as the one-process model did, and is the same within float
    tolerance (same global batches, same updates)."""
    base = weights(Path(manifest(single)["inputs"]["base"]))
    one, two = weights(single), weights(multi)
    same_shape = {k for k in one if k in base and base[k].shape == one[k].shape}
    moved = distance({k: one[k] for k in same_shape}, {k: base[k] for k in same_shape})
    apart = distance(one, two)
    assert moved > 0.01 and apart < 0.05 * moved, (moved, apart)


def kill_launch(proc: subprocess.Popen) -> None:
    """SIGKILL a launch and every worker it started, as a lost node would: torchrun starts each worker in a
    session of its own, so killing the launcher's process group alone leaves the workers training."""
    import psutil

    launcher = psutil.Process(proc.pid)
    every = [*launcher.children(recursive=True), launcher]
    for process in every:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    psutil.wait_procs(every, timeout=30)
