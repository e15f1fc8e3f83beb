"""Data-parallel generation without GPUs: which GPUs and rendezvous port each engine process gets, the
parent noticing an engine that dies without reporting, and the registry's TP/DP as overridable defaults."""

import multiprocessing
import os
import time

import pytest

from r1_distill.errors import UserError
from r1_distill.registry import load_registry
from r1_distill.teacher import generate as gen
from r1_distill.teacher.generate import (ENGINE_PORT_BASE, EnginePlacement, GenerateConfig, place_engines,
                                         resolve_teacher, start_engines, visible_gpus, vllm_port_base,
                                         wait_for_engines)


def _devices(placements):
    return [p.devices for p in placements]


# -- which GPUs ------------------------------------------------------------------------------------
def test_engines_split_the_parents_own_gpu_list():
    """CUDA_VISIBLE_DEVICES=4,5,6,7: a child told "0,1" would land on another job's physical GPUs."""
    gpus = visible_gpus("4,5,6,7", device_count=4)
    placements = place_engines(gpus, tensor_parallel_size=2, data_parallel_size=2, vllm_port_base=None)
    assert _devices(placements) == ["4,5", "6,7"]
    assert placements[1].env() == {"CUDA_VISIBLE_DEVICES": "6,7"}


def test_engines_pass_gpu_uuids_through():
    gpus = visible_gpus("GPU-uuid-a, GPU-uuid-b,", device_count=2)
    placements = place_engines(gpus, tensor_parallel_size=1, data_parallel_size=2, vllm_port_base=None)
    assert _devices(placements) == ["GPU-uuid-a", "GPU-uuid-b"]


def test_engines_number_the_gpus_when_the_parent_sets_no_list():
    gpus = visible_gpus(None, device_count=8)
    placements = place_engines(gpus, tensor_parallel_size=2, data_parallel_size=3, vllm_port_base=None)
    assert _devices(placements) == ["0,1", "2,3", "4,5"]  # GPUs 6 and 7 stay free


def test_a_list_longer_than_the_devices_cuda_counts_is_cut():
    assert visible_gpus("2,3,99", device_count=2) == ["2", "3"]


def test_without_gpus_the_engines_keep_the_parents_environment():
    for parent in (None, "", "0,1"):
        placements = place_engines(visible_gpus(parent, device_count=0), tensor_parallel_size=1,
                                   data_parallel_size=2, vllm_port_base=None)
        assert _devices(placements) == [None, None] and all(p.env() == {} for p in placements)


def test_too_few_visible_gpus_is_a_user_error_naming_them():
    with pytest.raises(UserError, match=r"needs 4 GPUs; 3 are visible \(4,5,6\)"):
        place_engines(visible_gpus("4,5,6", device_count=3), tensor_parallel_size=2, data_parallel_size=2,
                      vllm_port_base=None)


# -- which rendezvous port -------------------------------------------------------------------------
def test_vllm_engines_get_distinct_port_ranges():
    placements = place_engines(visible_gpus("4,5,6,7", device_count=4), tensor_parallel_size=2,
                               data_parallel_size=2, vllm_port_base=vllm_port_base({}))
    assert [p.vllm_port for p in placements] == [ENGINE_PORT_BASE, ENGINE_PORT_BASE + 100]
    assert placements[1].env() == {"CUDA_VISIBLE_DEVICES": "6,7", "VLLM_PORT": str(ENGINE_PORT_BASE + 100)}


def test_the_parents_vllm_port_is_the_base():
    assert vllm_port_base({"VLLM_PORT": "31000"}) == 31000
    assert vllm_port_base({"VLLM_PORT": "tcp://10.0.0.1:8000"}) == ENGINE_PORT_BASE  # a Kubernetes service variable
    with pytest.raises(UserError, match="VLLM_PORT"):
        place_engines([], tensor_parallel_size=1, data_parallel_size=8, vllm_port_base=65000)


def test_the_engine_process_applies_its_placement_before_generating(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    monkeypatch.delenv("VLLM_PORT", raising=False)
    seen = {}

    def fake_generate(config):
        seen.update(env=(os.environ["CUDA_VISIBLE_DEVICES"], os.environ["VLLM_PORT"]), shard=config.shard,
                    dp=config.data_parallel_size)
        return {"generated": 0}

    monkeypatch.setattr(gen, "generate", fake_generate)
    results = multiprocessing.Queue()
    config = GenerateConfig(teacher="t", prompts="p", out="o", data_parallel_size=2, tensor_parallel_size=2)
    gen._engine_process(config, EnginePlacement(rank=1, devices="6,7", vllm_port=20100), results)
    assert seen == {"env": ("6,7", "20100"), "shard": (1, 2), "dp": 1}
    assert results.get(timeout=5) == (1, {"generated": 0}, None)


# -- an engine that dies --------------------------------------------------------------------------
# Targets of real spawned children: start_engines calls target(*args, placement, results).
def _exit_without_reporting(code, placement, results):
    os._exit(code)


def _report_and_exit(placement, results):
    results.put((placement.rank, {"rank": placement.rank, "started": time.monotonic()}, None))


def _report_unless_rank_1(placement, results):
    if placement.rank == 1:
        os._exit(3)
    _report_and_exit(placement, results)


def _spawn(target, args, n, stagger_s=0.0):
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    placements = [EnginePlacement(rank=r, devices=f"{2 * r},{2 * r + 1}") for r in range(n)]
    return start_engines(ctx, target, args, placements, results, stagger_s=stagger_s), placements, results


@pytest.mark.timeout(60)
def test_an_engine_that_dies_without_reporting_fails_the_run_within_seconds():
    procs, placements, results = _spawn(_exit_without_reporting, (3,), n=1)
    started = time.monotonic()
    with pytest.raises(UserError, match=r"engine 0 \(GPUs 0,1\) died \(exit code 3\) before reporting"):
        wait_for_engines(procs, placements, results, poll_s=0.2)
    assert time.monotonic() - started < 15


@pytest.mark.timeout(60)
def test_the_healthy_engines_finish_and_the_dead_one_is_named():
    procs, placements, results = _spawn(_report_unless_rank_1, (), n=3)
    with pytest.raises(UserError) as failure:
        wait_for_engines(procs, placements, results, poll_s=0.2)
    assert "engine 1 (GPUs 2,3) died (exit code 3)" in str(failure.value)
    assert "engine 0" not in str(failure.value) and "engine 2" not in str(failure.value)
    assert all(proc.exitcode == (3 if rank == 1 else 0) for rank, proc in enumerate(procs))


@pytest.mark.timeout(60)
def test_engines_that_report_and_exit_at_once_are_not_taken_for_dead():
    """The report is in the queue's pipe when the exit is seen: it is read, not counted lost."""
    procs, placements, results = _spawn(_report_and_exit, (), n=3)
    for proc in procs:  # all have exited before the parent reads anything
        proc.join(timeout=30)
    summaries = wait_for_engines(procs, placements, results, poll_s=0.2)
    assert [s["rank"] for s in summaries] == [0, 1, 2]


@pytest.mark.timeout(60)
def test_engines_start_staggered():
    procs, placements, results = _spawn(_report_and_exit, (), n=2, stagger_s=1.0)
    first, second = wait_for_engines(procs, placements, results, poll_s=0.2)
    assert second["started"] - first["started"] > 0.5


def test_an_engine_killed_by_a_signal_is_named_with_it():
    message = gen._death(EnginePlacement(rank=2, devices="GPU-x"), -9)
    assert message == "engine 2 (GPUs GPU-x) died (exit code -9, SIGKILL: the out-of-memory killer?) before reporting"


# -- TP and DP: the command line's value if given, else the registry's ----------------------------
def _resolve(**given):
    return resolve_teacher(GenerateConfig(teacher="r1-distill-qwen-32b", prompts="p", out="o", **given), load_registry())


def test_registry_parallelism_is_a_default_the_command_line_can_lower():
    registry = load_registry().teacher("r1-distill-qwen-32b")
    assert registry.tensor_parallel_size == 2
    assert _resolve().tensor_parallel_size == 2
    assert _resolve(tensor_parallel_size=1).tensor_parallel_size == 1  # the 32B on one H200
    assert _resolve(data_parallel_size=4).data_parallel_size == 4
    assert _resolve().data_parallel_size == registry.data_parallel_size


def test_parallel_sizes_below_one_are_user_errors():
    with pytest.raises(UserError, match="at least 1"):
        _resolve(tensor_parallel_size=0)
    with pytest.raises(UserError, match="at least 1"):
        resolve_teacher(GenerateConfig(teacher="org/model", prompts="p", out="o", backend="vllm", data_parallel_size=0),
                        load_registry())


def test_the_cli_passes_no_parallel_size_unless_given(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from r1_distill.cli import app

    configs = []

    def fake_generate(config):
        configs.append(config)
        return {"generated": 0, "already_done": 0, "total": 0}

    monkeypatch.setattr(gen, "generate", fake_generate)
    base = ["generate", "--teacher", "r1-distill-qwen-32b", "--prompts", "p.jsonl", "--out", str(tmp_path)]
    for extra in ([], ["--tensor-parallel-size", "1", "--data-parallel-size", "2"]):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 0, result.output
    assert [(c.tensor_parallel_size, c.data_parallel_size) for c in configs] == [(None, None), (1, 2)]
