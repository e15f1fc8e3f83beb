"""The shipped ddp.yaml (plain data parallel, the 1.5B recipe's launch) on two CPU workers over gloo, from a
hub-shaped base: the run saves once (only rank 0 writes) and its model equals a one-process run on the same data
within float tolerance. Resuming after a SIGKILL of the whole launch: tests/test_zero3_full_resume.py."""

import pytest

from launching import (assert_matches_one_process, assert_saved_once_by_main, cpu_copy, environment, launch, manifest,
                       one_process_runs, run, train_args)

pytestmark = pytest.mark.slow
_ = one_process_runs


def test_two_processes_save_once_and_match_one_process(one_process_runs, tmp_path):
    multi = tmp_path / "multi"
    run(launch(cpu_copy("ddp", tmp_path), train_args("full", one_process_runs.traces, multi, "--epochs", "4",
                                                     "--save-steps", "1000")),
        environment(one_process_runs.traces.parent / "site", multi))
    metrics = manifest(multi)["metrics"]
    assert metrics["processes"] == 2 and metrics["distributed"] == "ddp" and metrics["steps"] == 4
    assert metrics["zero3_partitioned_at_load"] is None  # every DDP worker holds the whole model
    assert_saved_once_by_main(multi)
    for name in ("README.md", "loss.png", "generation_config.json"):
        assert (multi / name).is_file(), name
    assert_matches_one_process(multi, one_process_runs("full", 4))
