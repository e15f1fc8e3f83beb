"""The shipped fsdp2.yaml on two CPU workers (its copy with use_cpu: true) is refused with the reason and what
works instead, before anything loads: accelerate 1.16 turns FSDP on only for GPU launches (a CPU launch is
MULTI_CPU data parallelism), so the run would otherwise train unsharded while its config says FSDP2.
The FSDP2 path itself is checked on a GPU by bench/gpu_check.py (`fsdp2`)."""

import subprocess

import pytest

from launching import cpu_copy, environment, launch, one_process_runs, train_args

pytestmark = pytest.mark.slow
_ = one_process_runs


def test_fsdp2_launch_on_cpu_is_refused_with_the_reason(one_process_runs, tmp_path):
    out = tmp_path / "fsdp"
    done = subprocess.run(launch(cpu_copy("fsdp2", tmp_path), train_args("full", one_process_runs.traces, out, "--epochs", "1")),
                          env=environment(one_process_runs.traces.parent / "site", out), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode != 0
    assert "error: accelerate runs FSDP only on GPUs" in done.stderr and "zero3.yaml" in done.stderr, done.stderr[-3000:]
    assert not (out / "model.safetensors").exists() and not (out / "checkpoints").exists()
