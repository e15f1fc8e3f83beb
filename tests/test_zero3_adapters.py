"""`train --method lora` and `--method qlora` under the shipped zero3.yaml on two CPU workers, from a hub-shaped
base (Llama 3.1's tokenizer as shipped): DeepSpeed ZeRO-3 ran in both, and the run saved once, from rank 0, a
loadable merged model (no quantization left), its tokenizer and one manifest, equal to a one-process run of the
same method within float tolerance.
- LoRA: zero.Init partitioned the base as it loaded (rank 0 held half the parameters right after from_pretrained,
  never the whole model). Before, rank 0 reloaded the base for the merge under zero.Init while rank 1 waited at a
  barrier: a hang, then a crash with the merged model never written.
- QLoRA (bitsandbytes runs NF4 on the CPU): the 4-bit base is stored in a float dtype with no device map, which
  ZeRO-3 can shard. Before, every worker put its 4-bit model on device 0 with uint8 storage."""

import json

import pytest

from launching import (assert_matches_one_process, assert_saved_once_by_main, cpu_copy, environment, launch, manifest,
                       one_process_runs, run, train_args)

pytestmark = pytest.mark.slow
_ = one_process_runs


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_zero3_adapter_run_saves_one_merged_model_equal_to_one_process(method, one_process_runs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    single = one_process_runs(method, 2)
    multi = tmp_path / "multi"
    run(launch(cpu_copy("zero3", tmp_path),
               train_args(method, one_process_runs.traces, multi, "--epochs", "2", "--save-steps", "1000")),
        environment(one_process_runs.traces.parent / "site", multi))

    metrics = manifest(multi)["metrics"]
    assert metrics["processes"] == 2 and metrics["distributed"] == "deepspeed" and metrics["steps"] == 2
    if method == "lora":
        loaded = metrics["zero3_partitioned_at_load"]
        assert loaded and loaded["held_by_main_process"] <= 0.55 * loaded["parameters"], loaded
    else:
        assert metrics["quantization"].startswith("bitsandbytes nf4")
    assert_saved_once_by_main(multi)
    assert (multi / "adapter" / "adapter_model.safetensors").is_file()
    assert "quantization_config" not in json.loads((multi / "config.json").read_text())
    AutoModelForCausalLM.from_pretrained(multi)
    tokenizer = AutoTokenizer.from_pretrained(multi)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                         add_generation_prompt=True).endswith("<think>\n")
    assert_matches_one_process(multi, single)
