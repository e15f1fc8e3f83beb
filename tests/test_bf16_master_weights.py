"""A full fine-tune in bf16 in one process (no DeepSpeed or FSDP to keep an fp32 copy) trains fp32 master weights
under bf16 autocast: 10 steps at lr 1e-6 move nearly every weight, where bf16 weights would round each update
of about 1e-6 away (bf16's step at 0.02 is about 1e-4), and the final model is saved in bf16."""

import json

import pytest

from r1_distill.distill.train import TrainConfig, train

pytestmark = pytest.mark.slow


def test_bf16_full_fine_tune_keeps_fp32_masters_and_saves_bf16(small_vocab_model, task_traces, tmp_path):
    from safetensors.torch import load_file

    from support import first_kept

    out = tmp_path / "bf16"
    metrics = train(TrainConfig(student=str(small_vocab_model), traces=str(first_kept(task_traces, 10, tmp_path)),
                                out=str(out), method="full", precision="bf16", learning_rate=1e-6, epochs=1,
                                max_length=256, per_device_batch=1, effective_batch=1, save_steps=10))
    assert metrics["steps"] == 10 and metrics["precision"] == "bf16" and metrics["weights_dtype"] == "float32"
    base = load_file(str(small_vocab_model / "model.safetensors"))
    masters = load_file(str(out / "checkpoints" / "checkpoint-10" / "model.safetensors"))
    assert all(v.dtype.is_floating_point and str(v.dtype) == "torch.float32" for v in masters.values())
    changed = sum(int((masters[k] != base[k].float()).sum()) for k in base)
    assert changed > 0.9 * sum(v.numel() for v in base.values()), changed
    saved = load_file(str(out / "model.safetensors"))
    assert {str(v.dtype) for v in saved.values()} == {"torch.bfloat16"}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
