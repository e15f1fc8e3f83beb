"""distill/onpolicy.py: `train --method on-policy` on TRL's GKD trainer and on its DistillationTrainer with a local
teacher (an SFT-trained small-vocab model teaching an untrained one), the options that must be refused, and a URL teacher served
by our own server (ServerDistillationTrainer, the teacher's log-probabilities read over HTTP)."""

import json
import subprocess
import sys

import pytest

from support import JsonHandler, first_kept, stand_in_server
from r1_distill.distill.train import TrainConfig, train
from r1_distill.errors import UserError
from r1_distill.traces import write_traces

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prompts32(task_traces, tmp_path_factory):
    return first_kept(task_traces, 32, tmp_path_factory.mktemp("op"))


@pytest.fixture(scope="module")
def sft_teacher(small_vocab_model, task_traces, tmp_path_factory):
    """The small-vocab model after one epoch of SFT on the task's traces: a teacher worth imitating."""
    out = tmp_path_factory.mktemp("teacher") / "teacher"
    metrics = train(TrainConfig(student=str(small_vocab_model), traces=str(task_traces / "kept.jsonl"), out=str(out),
                                epochs=1, max_length=256, per_device_batch=8, effective_batch=8, learning_rate=3e-3,
                                print_logs=False))
    assert metrics["final_loss"] < metrics["first_loss"]
    return out


def test_on_policy_cli_local_teacher_divergence_falls_and_student_thinks_first(small_vocab_model, sft_teacher, prompts32,
                                                                              tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "student"
    done = subprocess.run([sys.executable, "-m", "r1_distill", "train", "--method", "on-policy", "--student",
                           str(small_vocab_model), "--teacher", str(sft_teacher), "--traces", str(prompts32), "--out",
                           str(out), "--per-device-batch", "4", "--effective-batch", "4", "--lr", "3e-3",
                           "--max-new-tokens", "48", "--divergence", "reverse"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "teacher forward passes" in done.stdout
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    assert m["trainer"] == "GKDTrainer" and m["divergence"] == "reverse KL" and m["steps"] == 8
    # the untrained student starts far from the teacher and comes closer on its own samples
    assert m["final_loss"] < 0.6 * m["first_loss"], m
    c = m["compute"]
    assert c["teacher_forward_passes"] == 32 and c["on_policy_batches"] == 8 and c["off_policy_batches"] == 0
    assert 32 <= c["student_sampled_tokens"] <= 32 * 48 and c["teacher_tokens"] > c["student_sampled_tokens"]
    tok = AutoTokenizer.from_pretrained(out)
    AutoModelForCausalLM.from_pretrained(out)
    prompt = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<think>\n")
    for name in ("README.md", "loss.png", "log_history.json", "generation_config.json"):
        assert (out / name).is_file()
    assert "teacher forward passes | 32" in (out / "README.md").read_text()


def test_distillation_trainer_divergence_falls_and_its_compute_is_counted(small_vocab_model, sft_teacher, prompts32,
                                                                         tmp_path):
    """--on-policy-trainer distillation: TRL's DistillationTrainer (what auto picks on a GPU at lambda 1, its loss
    computed chunk by chunk), run here on the CPU through the same command."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "student"
    done = subprocess.run([sys.executable, "-m", "r1_distill", "train", "--method", "on-policy", "--student",
                           str(small_vocab_model), "--teacher", str(sft_teacher), "--traces", str(prompts32), "--out",
                           str(out), "--per-device-batch", "4", "--effective-batch", "4", "--lr", "3e-3",
                           "--max-new-tokens", "48", "--divergence", "reverse", "--on-policy-trainer", "distillation"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    assert m["trainer"] == "DistillationTrainer" and m["divergence"] == "reverse KL" and m["steps"] == 8, m
    assert m["final_loss"] < 0.6 * m["first_loss"], m
    c = m["compute"]
    assert c["teacher_forward_passes"] == 32 and c["on_policy_batches"] == 8 and c["off_policy_batches"] == 0, c
    assert 32 <= c["student_sampled_tokens"] <= 32 * 48 and c["teacher_tokens"] > c["student_sampled_tokens"]
    assert m["generation_use_cache"] is True and m["generation_max_new_tokens"] == 48
    tok = AutoTokenizer.from_pretrained(out)
    AutoModelForCausalLM.from_pretrained(out)
    assert tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False,
                                   add_generation_prompt=True).endswith("<think>\n")


def test_lambda_zero_trains_off_policy_on_the_traces_with_jsd(small_vocab_model, sft_teacher, prompts32, tmp_path):
    """lambda 0: every batch is the traces' own completions scored by the teacher (no sampling)."""
    m = train(TrainConfig(student=str(small_vocab_model), teacher=str(sft_teacher), method="on-policy",
                          traces=str(prompts32), out=str(tmp_path / "s"), per_device_batch=8, effective_batch=8,
                          lmbda=0.0, divergence="jsd", learning_rate=3e-3, logging_steps=1, print_logs=False))
    assert m["divergence"] == "JSD" and m["steps"] == 4 and m["final_loss"] < m["first_loss"]
    assert m["compute"]["student_sampled_tokens"] == 0 and m["compute"]["off_policy_batches"] == 4


def _other_tokenizer_model(root):
    from r1_distill.demo.models import DemoModelSpec, build_model, build_tokenizer
    from r1_distill.demo.task import cold_start_traces, make_splits

    rows = cold_start_traces(make_splits({"train": 100, "prompt": 0, "heldout": 0})["train"], slip_rate=0.0)
    tok = build_tokenizer([x for r in rows for x in (r["problem"].text, r["reasoning"])], root / "tok", vocab_size=500)
    return build_model(DemoModelSpec(hidden_size=32, num_hidden_layers=1), tok, root / "model")


def test_bad_on_policy_options_are_one_line_and_exit_2(small_vocab_model, sft_teacher, prompts32, tmp_path, server):
    def run(**kw):
        base = dict(student=str(small_vocab_model), teacher=str(sft_teacher), method="on-policy", traces=str(prompts32),
                    out=str(tmp_path / "x"))
        with pytest.raises(UserError) as err:
            train(TrainConfig(**{**base, **kw}))
        return str(err.value)

    assert "forward, reverse or jsd" in run(divergence="sideways")
    assert "--beta goes with --divergence jsd" in run(divergence="forward", beta=0.3)
    assert "outside [0, 1]" in run(lmbda=1.5)
    assert "needs --teacher" in run(teacher=None)
    assert "--divergence reverse" in run(teacher="http://127.0.0.1:9/v1", divergence="forward")
    # a server of another family (Qwen2.5's tokenizer; the student's is the demo's 640 pieces), caught by its /tokenize
    assert "tokenizes differently from the student" in run(teacher=server.url + "/v1")
    assert "--teacher goes with --method on-policy" in run(method="full")
    assert "auto, distillation or gkd" in run(on_policy_trainer="vllm")
    assert "fully on-policy (lambda 1)" in run(on_policy_trainer="distillation", lmbda=0.5)
    assert "is for a local teacher" in run(teacher="http://127.0.0.1:9/v1", on_policy_trainer="gkd")
    other = _other_tokenizer_model(tmp_path)
    # another tokenizer trains with TRL's cross-tokenizer loss (test_onpolicy_cross_tokenizer.py), which has no divergence
    assert "another tokenizer than the student" in run(teacher=str(other), divergence="forward")
    assert "only TRL's GOLD trainer" in run(teacher=str(other), on_policy_trainer="distillation")
    done = subprocess.run([sys.executable, "-m", "r1_distill", "train", "--method", "on-policy", "--student",
                           str(small_vocab_model), "--teacher", str(other), "--traces", str(prompts32), "--out",
                           str(tmp_path / "y"), "--beta", "0.5"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "no --divergence or --beta" in done.stderr and "Traceback" not in done.stderr


def test_url_teacher_our_server_scores_the_students_tokens(hub_student_qwen2, server, tmp_path, data_dir):
    """The teacher behind `r1-distill serve` (the student's own weights as a Q4_K_M GGUF): its log-probability of each
    sampled token, read over HTTP, matches the HF model's; then ServerDistillationTrainer runs three steps on it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1_distill.distill.onpolicy import Compute, ServerScorer
    from r1_distill.traces import TraceRecord

    tok = AutoTokenizer.from_pretrained(hub_student_qwen2)
    model = AutoModelForCausalLM.from_pretrained(hub_student_qwen2)
    seq = tok("What is 2+2? Let me think step by step", add_special_tokens=False)["input_ids"]
    compute = Compute()
    scored = ServerScorer(server.url, compute).get_sequence_logprobs([seq], [3], top_logprobs=1)
    with torch.no_grad():
        hf = torch.log_softmax(model(torch.tensor([seq])).logits[0].float(), -1)
    expected = [hf[p - 1, seq[p]].item() for p in range(3, len(seq))]
    got = [v[0] for v in scored["actual_logprobs"][0]]
    assert len(got) == len(seq) - 3 and max(abs(a - b) for a, b in zip(got, expected)) < 0.5, (got, expected)
    assert ServerScorer(server.url, Compute()).tokenizes_like(tok) is True  # the student's own tokenizer behind /tokenize
    assert compute.student_sampled_tokens == len(seq) - 3

    rows = [json.loads(line) for line in (data_dir / "gsm8k_train.jsonl").read_text().splitlines()[:6]]
    write_traces(tmp_path / "kept.jsonl", [TraceRecord.from_completion(
        problem_id=r["id"], problem=r["problem"], reference_answer=r["answer"], sample_index=0, teacher="ref",
        backend="ref", kept=True, finish_reason="stop", completion="x\n</think>\n\n1") for r in rows])
    m = train(TrainConfig(student=str(hub_student_qwen2), teacher=server.url + "/v1", method="on-policy",
                          traces=str(tmp_path / "kept.jsonl"), out=str(tmp_path / "s"), per_device_batch=2,
                          effective_batch=2, max_new_tokens=8, learning_rate=1e-3, logging_steps=1, print_logs=False))
    assert m["trainer"] == "ServerDistillationTrainer" and m["teacher_kind"] == "url" and m["steps"] == 3
    assert m["compute"]["teacher_forward_passes"] == 6 and 6 <= m["compute"]["student_sampled_tokens"] <= 48
    losses = [h["loss"] for h in json.loads((tmp_path / "s" / "log_history.json").read_text()) if "loss" in h]
    # the teacher is the student's own weights (quantized): scored at the right positions, the divergence is ~0
    # (one position off, it would be the KL between unrelated next-token distributions)
    assert len(losses) == 3 and all(abs(loss) < 1e-3 for loss in losses), losses
    tok = AutoTokenizer.from_pretrained(tmp_path / "s")
    assert tok.apply_chat_template([{"role": "user", "content": "1+1"}], tokenize=False,
                                   add_generation_prompt=True).endswith("<think>\n")


def test_url_teacher_probe_reads_every_tokenize_dialect(hub_student_qwen2):
    """The tokenizer probe against a stand-in server: llama-server's /tokenize answers 200 with no tokens to a
    body without `content` (so the probe must go on to its dialect), a server of another family answers other
    ids, and one without /tokenize cannot be checked."""
    from transformers import AutoTokenizer

    from r1_distill.distill.onpolicy import Compute, ServerScorer

    tok = AutoTokenizer.from_pretrained(hub_student_qwen2)
    behaviour = {"tokenize": "llama-server"}

    class Handler(JsonHandler):
        def do_GET(self):
            self.send_json(200, {"data": [{"id": "teacher"}]})

        def do_POST(self):
            body = self.read_json()
            if behaviour["tokenize"] == "none":
                return self.send_json(404, {"error": "not found"})
            if "content" not in body:
                return self.send_json(200, {"tokens": []})  # llama-server's answer to a body it does not read
            ids = tok(body["content"], add_special_tokens=False)["input_ids"]
            self.send_json(200, {"tokens": ids if behaviour["tokenize"] == "llama-server" else [i + 1 for i in ids]})

    with stand_in_server(Handler) as url:
        scorer = ServerScorer(url, Compute())
        assert scorer.tokenizes_like(tok) is True
        behaviour["tokenize"] = "other family"
        assert scorer.tokenizes_like(tok) is False
        behaviour["tokenize"] = "none"
        assert scorer.tokenizes_like(tok) is None
