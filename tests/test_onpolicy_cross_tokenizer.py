"""A teacher with another tokenizer (Llama 3.3's, given R1's format) distilled into a Qwen2.5-Math student, both
as the hub ships them: `train --method on-policy` takes TRL's GOLD trainer with its cross-tokenizer loss (ULD),
on the traces (lambda 0: the loss falls on fixed data) and on the student's own samples (lambda 1)."""

import json

import pytest

from support import first_kept
from r1_distill.distill.train import TrainConfig, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def traces8(task_traces, tmp_path_factory):
    return first_kept(task_traces, 8, tmp_path_factory.mktemp("cross"))


def run(student, teacher, traces, out, **options):
    return train(TrainConfig(student=str(student), teacher=str(teacher), method="on-policy", traces=str(traces),
                             out=str(out), per_device_batch=4, effective_batch=4, learning_rate=3e-3, max_new_tokens=16,
                             logging_steps=1, print_logs=False, precision="fp32", **options))


def test_off_policy_uld_loss_falls_and_the_student_thinks_first(hub_student_qwen2, hub_student_llama, traces8, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = run(hub_student_qwen2, hub_student_llama, traces8, tmp_path / "s", lmbda=0.0, epochs=2)
    assert m["trainer"] == "GOLDTrainer" and m["divergence"] == "ULD (cross-tokenizer)" and m["steps"] == 4
    assert "entries differ" in m["cross_tokenizer"]
    losses = [h["loss"] for h in json.loads((tmp_path / "s" / "log_history.json").read_text()) if "loss" in h]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    c = m["compute"]
    assert c["off_policy_batches"] == 4 and c["on_policy_batches"] == 0 and c["teacher_forward_passes"] == 16
    tok = AutoTokenizer.from_pretrained(tmp_path / "s")
    AutoModelForCausalLM.from_pretrained(tmp_path / "s")
    assert tok.apply_chat_template([{"role": "user", "content": "1+1"}], tokenize=False,
                                   add_generation_prompt=True).endswith("<think>\n")


def test_on_policy_samples_are_scored_by_the_other_tokenizers_teacher(hub_student_qwen2, hub_student_llama, traces8,
                                                                      tmp_path):
    m = run(hub_student_qwen2, hub_student_llama, traces8, tmp_path / "s", lmbda=1.0, epochs=0.5)
    assert m["trainer"] == "GOLDTrainer" and m["steps"] == 1
    c = m["compute"]
    assert c["on_policy_batches"] == 1 and c["teacher_forward_passes"] == 4 and 4 <= c["student_sampled_tokens"] <= 64
    assert m["final_loss"] is not None and m["final_loss"] == m["final_loss"]  # a number, not NaN


def test_fewer_traces_than_one_batch_are_refused_before_loading(hub_student_qwen2, hub_student_llama, traces8, tmp_path):
    from r1_distill.errors import UserError

    with pytest.raises(UserError, match="8 kept traces are fewer than one batch of 16"):
        train(TrainConfig(student=str(hub_student_qwen2), teacher=str(hub_student_llama), method="on-policy",
                          traces=str(traces8), out=str(tmp_path / "s"), per_device_batch=4, effective_batch=16))
    with pytest.raises(UserError, match="no --divergence or --beta"):
        run(hub_student_qwen2, hub_student_llama, traces8, tmp_path / "s", divergence="forward")
    assert not (tmp_path / "s").exists()
