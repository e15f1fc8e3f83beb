"""`r1-distill filter` and `train` on files in the public trace sets' row shapes, as a user runs them: verified where
the set has a reference, decontaminated against MATH-500, and a tiny student trained on what is kept."""

import json
import subprocess
import sys

import pytest

from r1_distill.traces import read_traces

pytestmark = pytest.mark.slow


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "r1_distill", *args], capture_output=True, text=True, timeout=timeout)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _reasoning(a, op, b, result):
    return (f"The question asks for {a} {op} {b}. Working it out step by step, {a} {op} {b} gives {result}. "
            f"Checking once more in another way, the result {result} is consistent with the question.")


def _answer(value):
    return f"The answer is $\\boxed{{{value}}}$."


def _think(reasoning, answer):
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


def openr1_row(problem, reasoning, answers, reference):
    generations = [_think(reasoning, _answer(a)) for a in answers]
    return {"problem": problem, "solution": f"So it is $\\boxed{{{reference}}}$.", "answer": reference,
            "problem_type": "Algebra", "question_type": "math-word-problem", "source": "olympiads", "uuid": "u-1",
            "is_reasoning_complete": [True] * len(answers), "generations": generations,
            "correctness_math_verify": [a == reference for a in answers], "correctness_llama": None,
            "finish_reasons": ["stop"] * len(answers), "correctness_count": 1,
            "messages": [{"content": problem, "role": "user"}, {"content": generations[0], "role": "assistant"}]}


def s1k_row(problem, reasoning, answer, solution):
    return {"solution": solution, "question": problem, "cot_type": "math", "source_type": "AI-MO/NuminaMath-CoT/olympiads",
            "metadata": "{}", "gemini_thinking_trajectory": reasoning, "gemini_attempt": _answer(answer),
            "deepseek_thinking_trajectory": reasoning, "deepseek_attempt": _answer(answer), "gemini_grade": "Yes",
            "gemini_grade_reason": "", "deepseek_grade": "Yes", "deepseek_grade_reason": ""}


def limo_row(problem, reasoning, answer, reference):
    return {"question": problem, "solution": f"{reasoning}\n\n**Final Answer**\n\\boxed{{{answer}}}", "answer": reference}


def am_row(problem, reasoning, answer, reference):
    return {"messages": [
        {"role": "user", "content": problem, "info": {"source": "natural_reasoning", "reference_answer": reference, "test_case": None}},
        {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n<answer>\n{_answer(answer)}\n</answer>",
         "info": {"source": "am-0309", "think_content": reasoning, "answer_content": _answer(answer)}}]}


def openthoughts_row(problem, reasoning, answer):
    value = f"<|begin_of_thought|>\n\n{reasoning}\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n{_answer(answer)}\n\n<|end_of_solution|>"
    return {"system": "Think it through, then answer.",
            "conversations": [{"from": "user", "value": problem}, {"from": "assistant", "value": value}]}


def openthoughts3_row(problem, reasoning, answer):
    return {"difficulty": 2, "source": "ai2-adapt-dev/openmath-2-math", "domain": "math",
            "conversations": [{"from": "human", "value": problem}, {"from": "gpt", "value": _think(reasoning, _answer(answer))}]}


def mixture_row(problem, reasoning, answer):
    return {"messages": [{"content": problem, "role": "user"}, {"content": _think(reasoning, _answer(answer)), "role": "assistant"}],
            "num_tokens": 120, "source": "open-r1/OpenR1-Math-220k"}


def nemotron_row(problem, reasoning, answer):
    return {"input": [{"role": "user", "content": problem}], "output": _think(reasoning, _answer(answer)), "category": "math",
            "license": "cc-by-4.0", "reasoning": "on", "generator": "DeepSeek-R1", "used_in_training": "Ultra, Super, Nano",
            "version": "v1.1", "system_prompt": "detailed thinking on"}


def test_public_sets_are_filtered_decontaminated_and_trained_on(tmp_path, data_dir, fixtures_path):
    bench = json.loads((data_dir / "math500.jsonl").read_text().splitlines()[5])  # the hexagon one: answer 42
    assert bench["answer"] == "42"
    sets = tmp_path / "sets"
    sets.mkdir()
    _jsonl(sets / "openr1_math.jsonl", [openr1_row("What is six times seven?", _reasoning(6, "times", 7, 42), ["42", "41"], "42")])
    _jsonl(sets / "s1k.jsonl", [s1k_row("What is nine plus ten?", _reasoning(9, "plus", 10, 19), "19",
                                        "Adding the two numbers gives $9 + 10 = 19$, so the sum is $\\boxed{19}$.")])
    _jsonl(sets / "limo.jsonl", [limo_row("What is fifteen minus eight?", _reasoning(15, "minus", 8, 6), "6", "7")])
    _jsonl(sets / "am.jsonl", [am_row("What is twelve divided by four?", _reasoning(12, "divided by", 4, 3), "3", "3"),
                               am_row(bench["problem"], _reasoning(7, "times", 6, 42), "42", bench["answer"])])
    # sets with no reference: every other check, and kept unverified
    _jsonl(sets / "openthoughts.jsonl", [openthoughts_row("What is two plus two?", _reasoning(2, "plus", 2, 4), "4")])
    _jsonl(sets / "openthoughts3.jsonl", [openthoughts3_row("What is three plus three?", _reasoning(3, "plus", 3, 6), "6")])
    _jsonl(sets / "mixture.jsonl", [mixture_row("What is five plus five?", _reasoning(5, "plus", 5, 10), "10")])
    _jsonl(sets / "nemotron.jsonl", [nemotron_row("What is eight plus one?", _reasoning(8, "plus", 1, 9), "9")])

    out = _cli("filter", "--traces", str(sets), "--out", str(tmp_path / "filtered"), "--workers", "1",
               "--decontaminate", str(data_dir / "math500.jsonl"))
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "filtered" / "report.json").read_text())
    assert report["input"] == 10  # OpenR1's two generations, and one trace for every other row
    kept = read_traces(tmp_path / "filtered" / "kept.jsonl")
    dropped = {(r.teacher, r.problem): r for r in read_traces(tmp_path / "filtered" / "dropped.jsonl")}
    assert {(r.teacher, r.problem) for r in kept} >= {("openr1-math", "What is six times seven?"),
                                                      ("s1k-1.1", "What is nine plus ten?"),
                                                      ("am-deepseek-r1", "What is twelve divided by four?")}
    assert all(r.checks["correctness"].passed for r in kept)
    unverified = {r.teacher for r in kept if r.checks["correctness"].reason.startswith("not verified")}
    assert unverified == {"openthoughts", "openthoughts3", "mixture-of-thoughts", "llama-nemotron"}, unverified
    assert report["kept_unverified"] == 4
    assert not dropped[("openr1-math", "What is six times seven?")].checks["correctness"].passed  # the \boxed{41} sample
    assert not dropped[("limo", "What is fifteen minus eight?")].checks["correctness"].passed
    copied = dropped[("am-deepseek-r1", bench["problem"])]
    assert not copied.checks["decontamination"].passed and "math500.jsonl" in copied.checks["decontamination"].reason
    assert copied.checks["correctness"].passed  # dropped for the copy alone

    trained = _cli("train", "--student", "tiny-qwen2.5-math", "--traces", str(tmp_path / "filtered" / "kept.jsonl"),
                   "--out", str(tmp_path / "student"), "--max-length", "1024", "--epochs", "1", "--format", "r1-distill")
    assert trained.returncode == 0, trained.stderr
    assert f"trained on {len(kept)} traces" in trained.stdout
    assert (tmp_path / "student" / "manifest.json").is_file()


def test_an_unknown_shape_is_one_line_from_the_command(tmp_path, fixtures_path):
    _jsonl(tmp_path / "mystery.jsonl", [{"prompt": "What is 2+2?", "response": "4"}])
    for stage in (["filter", "--out", str(tmp_path / "f")], ["train", "--student", "tiny-qwen2.5-math", "--out", str(tmp_path / "s")]):
        out = _cli(*stage, "--traces", str(tmp_path / "mystery.jsonl"), timeout=300)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith(f"error: unknown trace format in {tmp_path / 'mystery.jsonl'}: columns prompt, response; known: ")
