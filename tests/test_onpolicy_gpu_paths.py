"""distill/onpolicy.py's GPU-path settings, checked on CPU: a URL teacher refuses a sampling temperature it cannot
match, a vLLM teacher gets the prefix-caching advice once and on the main process only, and a local teacher's
student samples with its KV cache even under activation checkpointing (GKD would turn it off), in fp32 weights
under bf16 autocast (no fp32 master copy otherwise), saved back in bf16."""

import json
import subprocess
import sys

import pytest

from support import JsonHandler, first_kept, stand_in_server


def test_url_teacher_refuses_another_temperature_in_one_line_before_anything_loads(tmp_path):
    # the student folder does not exist: the refusal has to come before the student (or anything else) loads
    done = subprocess.run([sys.executable, "-m", "r1_distill", "train", "--method", "on-policy", "--student",
                           str(tmp_path / "never-loaded"), "--teacher", "http://127.0.0.1:9/v1", "--traces",
                           str(tmp_path / "kept.jsonl"), "--out", str(tmp_path / "s"), "--temperature", "0.6"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--temperature 0.6 with a URL teacher" in done.stderr and "leave --temperature at 1" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "s").exists()


def _vllm_like_server(requests: list):
    """A stand-in for `vllm serve`: /v1/models, and prompt_logprobs of -0.5 for every token of every prompt."""

    class Handler(JsonHandler):
        def do_GET(self):
            self.send_json(200, {"data": [{"id": "teacher", "owned_by": "vllm"}]})

        def do_POST(self):
            body = self.read_json()
            requests.append(body)
            choices = [{"text": "", "prompt_logprobs": [None] + [{str(t): {"logprob": -0.5}} for t in prompt[1:]]}
                       for prompt in body["prompt"]]
            self.send_json(200, {"choices": choices})

    return stand_in_server(Handler)


def test_a_vllm_teacher_gets_the_prefix_caching_advice_once_and_on_the_main_process_only(capsys):
    from r1_distill.distill.onpolicy import Compute, ServerScorer

    requests = []
    with _vllm_like_server(requests) as url:
        main = ServerScorer(url, Compute())
        for _ in range(2):
            scored = main.get_sequence_logprobs([[1, 2, 3, 4]], [2], top_logprobs=1)
        assert scored["actual_logprobs"] == [[[-0.5], [-0.5]]]
        ServerScorer(url, Compute(), announce=False).get_sequence_logprobs([[1, 2, 3]], [1], top_logprobs=1)
    printed = capsys.readouterr().out
    assert printed.count("--no-enable-prefix-caching") == 1 and "prompt_logprobs (vLLM)" in printed, printed
    assert len(requests) == 3 and all(r["prompt_logprobs"] == 1 for r in requests)


@pytest.mark.slow
def test_local_teacher_samples_with_the_kv_cache_under_checkpointing_in_fp32_weights(small_vocab_model, task_traces,
                                                                                      tmp_path):
    from transformers import AutoConfig

    from r1_distill.distill.train import TrainConfig, train

    traces = first_kept(task_traces, 4, tmp_path)
    m = train(TrainConfig(student=str(small_vocab_model), teacher=str(small_vocab_model), method="on-policy",
                          traces=str(traces), out=str(tmp_path / "s"), per_device_batch=4, effective_batch=4,
                          max_new_tokens=8, gradient_checkpointing=True, precision="bf16", logging_steps=1,
                          print_logs=False))
    assert m["trainer"] == "GKDTrainer" and m["steps"] == 1 and m["activation_checkpointing"] is True
    assert m["generation_use_cache"] is True and m["generation_max_new_tokens"] == 8, m
    assert m["compute"]["on_policy_batches"] == 1 and 4 <= m["compute"]["student_sampled_tokens"] <= 32
    assert m["weights_dtype"] == "float32" and m["final_loss"] == m["final_loss"]  # trained in fp32 masters, no NaN
    assert str(AutoConfig.from_pretrained(tmp_path / "s").dtype).endswith("bfloat16")
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["metrics"]["generation_use_cache"] is True


def test_a_local_teacher_trains_with_distillation_trainer_on_a_gpu_at_lambda_1_as_trl_recommends():
    from r1_distill.distill.onpolicy import local_trainer_name

    assert local_trainer_name("auto", lmbda=1.0, cuda=True, cross_tokenizer=None) == "distillation"
    assert local_trainer_name("auto", lmbda=0.5, cuda=True, cross_tokenizer=None) == "gkd"  # mixed lambda is GKD's
    assert local_trainer_name("auto", lmbda=1.0, cuda=False, cross_tokenizer=None) == "gkd"  # no vLLM on a CPU
    assert local_trainer_name("distillation", lmbda=1.0, cuda=False, cross_tokenizer=None) == "distillation"
    assert local_trainer_name("auto", lmbda=1.0, cuda=True, cross_tokenizer="meta-llama/Llama-3.1-8B") == "gold"
