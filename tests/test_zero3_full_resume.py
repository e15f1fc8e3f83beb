"""`train --method full` under the shipped zero3.yaml on two CPU workers, checkpointing by time (--save-minutes)
while rank 1's clock runs three times as fast as rank 0's, SIGKILLed with its launcher after a checkpoint, then
resumed with --resume:
- every worker saved at the same steps (rank 0 decides; deciding per worker, rank 1 would start a checkpoint's
  collectives alone and the run would hang until the collective timeout);
- the resumed run reloads DeepSpeed's partitioned state on each worker and finishes the run's steps, reading the
  traces rank 0 tokenized for the first launch (OUT/checkpoints/tokenized) rather than tokenizing again;
- it saves once, from rank 0, a loadable model equal to an uninterrupted one-process run within float tolerance."""

import json
import subprocess
import time

import pytest

from launching import (assert_matches_one_process, assert_saved_once_by_main, cpu_copy, environment, kill_launch,
                       launch, manifest, one_process_runs, run, train_args)

pytestmark = pytest.mark.slow
_ = one_process_runs
EPOCHS = 4  # one step an epoch


@pytest.fixture(scope="module")
def resumed(one_process_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("zero3-resume")
    out = root / "run"
    command = launch(cpu_copy("zero3", root), train_args(
        "full", one_process_runs.traces, out, "--epochs", str(EPOCHS), "--save-steps", "1000", "--save-minutes", "0.05",
        "--collective-timeout", "3"))
    env = environment(one_process_runs.traces.parent / "site", out, R1_TEST_FAST_CLOCK_RANK="1")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    kill_launch(proc)  # the launcher and both workers
    assert not (out / "manifest.json").exists()
    killed_at = sorted(int(p.parent.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    saved_before_kill = {p.name: _shard_ranks(p) for p in (out / "checkpoints").glob("checkpoint-*")}
    tokenized = (out / "checkpoints" / "tokenized" / "source.json").stat().st_mtime_ns
    run(command + ["--resume"], env)
    assert (out / "checkpoints" / "tokenized" / "source.json").stat().st_mtime_ns == tokenized  # read, not redone
    return out, killed_at, saved_before_kill


def _shard_ranks(checkpoint) -> set[str]:
    return {name for p in checkpoint.glob("global_step*/*optim_states.pt") for name in ("rank_0", "rank_1") if name in p.name}


def test_every_worker_saved_at_the_same_steps(resumed):
    out, _, saved_before_kill = resumed
    complete = [c for c in (out / "checkpoints").glob("checkpoint-*") if (c / "trainer_state.json").is_file()]
    assert complete
    for checkpoint in complete:
        assert _shard_ranks(checkpoint) == {"rank_0", "rank_1"}, checkpoint
    assert all(ranks == {"rank_0", "rank_1"} for name, ranks in saved_before_kill.items()
               if (out / "checkpoints" / name / "trainer_state.json").is_file())


def test_the_killed_run_resumes_and_finishes(resumed):
    out, killed_at, _ = resumed
    metrics = manifest(out)["metrics"]
    assert metrics["distributed"] == "deepspeed" and metrics["resumed"]
    assert metrics["resumed_from_step"] == killed_at[-1] and metrics["steps"] == EPOCHS
    steps = [h["step"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]
    assert steps == sorted(set(steps)) and steps[-1] == EPOCHS


def test_it_saves_once_a_model_equal_to_one_process(resumed, one_process_runs):
    from transformers import AutoModelForCausalLM

    out = resumed[0]
    assert_saved_once_by_main(out)
    AutoModelForCausalLM.from_pretrained(out)
    assert_matches_one_process(out, one_process_runs("full", EPOCHS))
