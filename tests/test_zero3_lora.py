"""`train --method lora` under the shipped zero3.yaml on two CPU workers, from a hub-shaped base (Llama 3.1's
tokenizer as shipped): DeepSpeed ZeRO-3 ran in both and partitioned the base as it loaded (zero.Init: rank 0 held
half the parameters right after from_pretrained, never the whole model), and the run saved once, from rank 0: a
loadable merged model, its tokenizer and one manifest, equal to a one-process LoRA run within float tolerance.
Before, rank 0 reloaded the base for the merge under zero.Init while rank 1 waited at a barrier: a hang, then a
crash with the merged model never written."""

import pytest

from launching import (assert_matches_one_process, assert_saved_once_by_main, cpu_copy, environment, launch, manifest,
                          one_process_runs, run, train_args)

pytestmark = pytest.mark.slow
_ = one_process_runs


def test_zero3_lora_saves_one_merged_model_equal_to_one_process(one_process_runs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    single = one_process_runs("lora", 2)
    multi = tmp_path / "multi"
    run(launch(cpu_copy("zero3", tmp_path),
               train_args("lora", one_process_runs.traces, multi, "--epochs", "2", "--save-steps", "1000")),
        environment(one_process_runs.traces.parent / "site", multi))

    metrics = manifest(multi)["metrics"]
    assert metrics["processes"] == 2 and metrics["distributed"] == "deepspeed" and metrics["steps"] == 2
    loaded = metrics["zero3_partitioned_at_load"]
    assert loaded and loaded["held_by_main_process"] <= 0.55 * loaded["parameters"], loaded
    assert_saved_once_by_main(multi)
    assert (multi / "adapter" / "adapter_model.safetensors").is_file()
    AutoModelForCausalLM.from_pretrained(multi)
    tokenizer = AutoTokenizer.from_pretrained(multi)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                         add_generation_prompt=True).endswith("<think>\n")
    assert_matches_one_process(multi, single)
