"""`grpo --method lora` under the shipped zero3.yaml on two CPU workers: both workers ran DeepSpeed ZeRO-3 with
the model partitioned as it loaded, generated and scored their groups (the length reward, its budget from the
command line: random completions of 2-5 words around a budget of 3), and rank 0 alone saved one loadable merged
model (the merge reloads the base outside ZeRO-3; under it, the reload's collectives hung the run)."""

import json

import pytest

from launching import (assert_saved_once_by_main, audit_site, cpu_copy, distance, environment, launch, manifest, run,
                       weights)

pytestmark = pytest.mark.slow


def test_grpo_lora_under_zero3_saves_one_merged_model(small_vocab_model, task_traces, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    site = audit_site(tmp_path)
    out = tmp_path / "grpo"
    done = run(launch(cpu_copy("zero3", tmp_path), [
        "grpo", "--model", str(small_vocab_model), "--prompts", str(task_traces / "prompt.jsonl"), "--out", str(out),
        "--method", "lora", "--steps", "3", "--num-generations", "4", "--prompts-per-step", "1",
        "--max-completion-length", "16", "--rewards", "length", "--length-budget", "3", "--prompt-suffix", "", "--lr", "1e-2",
        "--save-steps", "1000"]),
        environment(site, out))
    assert "generating with transformers" in done.stdout

    metrics = manifest(out)["metrics"]
    assert metrics["processes"] == 2 and metrics["distributed"] == "deepspeed" and metrics["steps"] == 3
    assert metrics["generator"] == "transformers" and metrics["zero3_partitioned_at_load"]
    assert len([h for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]) == 3
    assert_saved_once_by_main(out)
    AutoModelForCausalLM.from_pretrained(out)
    # the adapter came out of ZeRO-3 whole (a partitioned save would give empty tensors) and learned (the length
    # reward varies over random completions), and the merged model is the base plus the adapter's update
    adapter = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert adapter and all(v.numel() > 0 for v in adapter.values())
    assert any(float(v.norm()) > 0 for k, v in adapter.items() if "lora_B" in k)
    merged, base = weights(out), weights(small_vocab_model)
    assert {k: v.shape for k, v in merged.items()} == {k: v.shape for k, v in base.items()}
    assert distance(merged, base) > 0
