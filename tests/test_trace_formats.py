"""r1_distill/trace_formats.py: rows of the public trace sets, in each set's exact row shape, read as trace records."""

import json

import pytest

from r1_distill.cli import main
from r1_distill.errors import UserError
from r1_distill.trace_formats import KNOWN_NAMES, problem_hash
from r1_distill.traces import TraceRecord, read_traces, write_traces

PROBLEM = "What is six times seven?"
REASONING = "Six times seven: 6 * 7 = 42. Let me check: 7 + 7 + 7 + 7 + 7 + 7 = 42."
ANSWER = "The product is $\\boxed{42}$."


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _think(reasoning=REASONING, answer=ANSWER):
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


# -- one row in each set's shape (column names, order and nesting as the dataset cards show them) -------------
def openr1_row(generations=None, finish_reasons=None):
    generations = generations or [_think(), _think(answer="So it is $\\boxed{41}$.")]
    return {"problem": PROBLEM, "solution": "We multiply: $6\\cdot 7=42$, so the answer is $\\boxed{42}$.", "answer": "42",
            "problem_type": "Algebra", "question_type": "math-word-problem", "source": "olympiads",
            "uuid": "2d3a8b1c-5f0e-5b5e-9a8e-1f1d2c3b4a59", "is_reasoning_complete": [True] * len(generations),
            "generations": generations, "correctness_math_verify": [True, False][:len(generations)],
            "correctness_llama": None, "finish_reasons": finish_reasons, "correctness_count": 1,
            "messages": [{"content": PROBLEM, "role": "user"}, {"content": generations[0], "role": "assistant"}]}


def mixture_row():
    return {"messages": [{"content": "You are a helpful assistant.", "role": "system"},
                         {"content": PROBLEM, "role": "user"}, {"content": _think(), "role": "assistant"}],
            "num_tokens": 812, "source": "open-r1/OpenR1-Math-220k"}


OPENTHOUGHTS_SYSTEM = ("Your role as an assistant involves thoroughly exploring questions through a systematic long thinking "
                       "process before providing the final precise and accurate solutions.")


def openthoughts_row():
    value = (f"<|begin_of_thought|>\n\n{REASONING}\n\n<|end_of_thought|>\n\n"
             f"<|begin_of_solution|>\n\n{ANSWER}\n\n<|end_of_solution|>")
    return {"system": OPENTHOUGHTS_SYSTEM,
            "conversations": [{"from": "user", "value": f"Return your final response within \\boxed{{}}. {PROBLEM}"},
                              {"from": "assistant", "value": value}]}


def openthoughts3_row(answer=ANSWER):
    return {"difficulty": 3, "source": "ai2-adapt-dev/openmath-2-math", "domain": "math",
            "conversations": [{"from": "human", "value": PROBLEM}, {"from": "gpt", "value": _think(answer=answer)}]}


def s1k_row(solution="Since $6 \\times 7 = 42$, the answer is $\\boxed{42}$.", question=PROBLEM):
    return {"solution": solution, "question": question, "cot_type": "math", "source_type": "qq8933/AIME_1983_2024",
            "metadata": "{'ID': '1983-1', 'Year': 1983}", "gemini_thinking_trajectory": "Gemini thinks.",
            "gemini_attempt": "Gemini: 42", "deepseek_thinking_trajectory": REASONING, "deepseek_attempt": ANSWER,
            "gemini_grade": "Yes", "gemini_grade_reason": "matches", "deepseek_grade": "Yes",
            "deepseek_grade_reason": "matches"}


def limo_row():
    return {"question": PROBLEM, "solution": f"{REASONING}\n\n**Final Answer**\n\\boxed{{42}}",
            "answer": "42"}


def am_row(with_info=True):
    answered = {"source": "am-0309", "think_content": REASONING, "answer_content": ANSWER, "verify_score": 1.0,
                "model_name": "DeepSeek-R1"} if with_info else {"source": "am-0309"}
    return {"messages": [
        {"role": "user", "content": PROBLEM, "info": {"source": "natural_reasoning", "reference_answer": "42", "test_case": None}},
        {"role": "assistant", "content": f"<think>\n{REASONING}\n</think>\n<answer>\n{ANSWER}\n</answer>", "info": answered}]}


def nemotron_row(thinking=True):
    return {"input": [{"role": "user", "content": PROBLEM}], "output": _think() if thinking else ANSWER,
            "category": "math", "license": "cc-by-4.0", "reasoning": "on" if thinking else "off",
            "generator": "DeepSeek-R1", "used_in_training": "Ultra, Super, Nano", "version": "v1.1",
            "system_prompt": f"detailed thinking {'on' if thinking else 'off'}"}


SHAPES = {
    "openr1-math": (openr1_row, "42"),
    "mixture-of-thoughts": (mixture_row, None),
    "openthoughts": (openthoughts_row, None),
    "openthoughts3": (openthoughts3_row, None),
    "s1k-1.1": (s1k_row, "42"),
    "limo": (limo_row, "42"),
    "am-deepseek-r1": (am_row, "42"),
    "llama-nemotron": (nemotron_row, None),
}


@pytest.mark.parametrize("name", SHAPES)
def test_each_shape_is_detected_and_read(tmp_path, name):
    make_row, reference = SHAPES[name]
    path = _jsonl(tmp_path / f"{name}.jsonl", [make_row()])
    record = read_traces(path)[0]
    assert record.teacher == name and record.backend == "dataset" and record.kept is None
    assert record.meta["source"] == name and record.meta["row"] == 0 and record.meta["file"] == str(path)
    assert record.problem.endswith(PROBLEM) and record.problem_id == problem_hash(record.problem)
    assert (record.reasoning, record.reference_answer, record.sample_index) == (REASONING, reference, 0)
    answer = "The product is $\\boxed{42}$." if name != "limo" else "**Final Answer**\n\\boxed{42}"
    assert record.answer == answer
    assert record.completion == f"{REASONING}\n</think>\n\n{answer}"


def test_openr1_generations_are_the_samples_of_one_problem(tmp_path):
    cut = f"<think>\n{REASONING} And then"
    rows = [openr1_row(generations=[_think(), _think(answer="$\\boxed{41}$"), cut], finish_reasons=["stop", "stop", "length"])]
    records = read_traces(_jsonl(tmp_path / "openr1.jsonl", rows))
    assert [r.sample_index for r in records] == [0, 1, 2] and len({r.problem_id for r in records}) == 1
    assert [r.finish_reason for r in records] == ["stop", "stop", "length"]
    assert [r.meta["correctness_math_verify"] for r in records[:2]] == [True, False]
    assert records[0].meta["columns"]["uuid"] == rows[0]["uuid"] and records[0].meta["columns"]["source"] == "olympiads"
    # a cut-off generation stays unclosed: filter's format and length checks see it
    assert records[2].answer == "" and "</think>" not in records[2].completion


def test_rows_of_one_problem_number_their_samples_across_shards(tmp_path):
    _jsonl(tmp_path / "a.jsonl", [openthoughts3_row(), openthoughts3_row(answer="$\\boxed{41}$")])
    _jsonl(tmp_path / "b.jsonl", [openthoughts3_row(answer="It is $\\boxed{42}$.")])
    records = read_traces(tmp_path)
    assert [(r.meta["file"].rsplit("/", 1)[1], r.meta["row"], r.sample_index) for r in records] == \
        [("a.jsonl", 0, 0), ("a.jsonl", 1, 1), ("b.jsonl", 0, 2)]
    assert records[0].meta["columns"] == {"difficulty": 3, "source": "ai2-adapt-dev/openmath-2-math", "domain": "math"}


def test_parquet_nested_rows_read_like_jsonl(tmp_path):
    rows = [openr1_row(), am_row()]
    for name, row in zip(["openr1", "am"], rows):
        from_jsonl = read_traces(_jsonl(tmp_path / f"{name}.jsonl", [row]))
        from_parquet = read_traces(_parquet(tmp_path / f"{name}.parquet", [row]))

        def same(r):
            return r.model_dump(exclude={"created_at", "meta"})

        assert [same(r) for r in from_parquet] == [same(r) for r in from_jsonl] and from_parquet


def test_sky_t1_json_array_file(tmp_path):
    path = tmp_path / "Sky-T1_data_17k.json"
    path.write_text(json.dumps([openthoughts_row(), openthoughts_row()]))
    assert [r.sample_index for r in read_traces(path)] == [0, 1]


def test_s1k_reference_is_the_solutions_final_answer(tmp_path):
    rows = [s1k_row(), s1k_row(solution="33", question="AIME: find n."),
            s1k_row(solution="A proof in words.\nIt has several lines and no boxed answer.", question="Prove it.")]
    records = read_traces(_jsonl(tmp_path / "s1k.jsonl", rows))
    assert [r.reference_answer for r in records] == ["42", "33", None]
    assert records[0].meta["columns"]["deepseek_grade"] == "Yes"


def test_am_without_info_contents_splits_the_tags(tmp_path):
    record = read_traces(_jsonl(tmp_path / "am.jsonl", [am_row(with_info=False)]))[0]
    assert (record.reasoning, record.answer, record.reference_answer) == (REASONING, ANSWER, "42")
    assert record.meta["info.source"] == "am-0309"


def test_nemotron_without_thinking_has_empty_reasoning(tmp_path):
    record = read_traces(_jsonl(tmp_path / "n.jsonl", [nemotron_row(thinking=False)]))[0]
    assert (record.reasoning, record.answer) == ("", ANSWER)
    assert record.meta["columns"]["system_prompt"] == "detailed thinking off"


def test_generic_messages_read_filters_dataset_rows(tmp_path):
    row = {"messages": [{"role": "user", "content": PROBLEM, "reasoning_content": None},
                        {"role": "assistant", "content": _think(), "reasoning_content": REASONING}],
           "problem_id": "p7", "sample_index": 3, "source": "openr1-math", "reference_answer": "42"}
    record = read_traces(_parquet(tmp_path / "data.parquet", [row]))[0]
    assert (record.problem_id, record.sample_index, record.reference_answer, record.teacher) == ("p7", 3, "42", "messages")
    assert (record.reasoning, record.answer) == (REASONING, ANSWER)


def test_our_records_still_read_as_before(tmp_path):
    ours = TraceRecord.from_completion(problem_id="p", problem=PROBLEM, sample_index=0, teacher="t", backend="b",
                                       completion=_think())
    for name in ("t.jsonl", "t.parquet"):
        write_traces(tmp_path / name, [ours])
        assert read_traces(tmp_path / name) == [ours] == read_traces(tmp_path / name, format="r1-distill")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"problem_id": "p"}) + "\n")
    with pytest.raises(UserError, match="record 1 is not a trace record"):
        read_traces(tmp_path / "bad.jsonl")


def test_unknown_shape_is_one_line_naming_columns_and_formats(tmp_path, capsys):
    path = _jsonl(tmp_path / "mystery.jsonl", [{"prompt": PROBLEM, "response": ANSWER, "score": 1}])
    with pytest.raises(UserError) as caught:
        read_traces(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"unknown trace format in {path}: columns prompt, response, score; known: ")
    assert message.endswith("(or pass --format NAME)") and all(name in message for name in KNOWN_NAMES)
    assert main(["filter", "--traces", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown trace format" in err


def test_format_forces_a_reader(tmp_path):
    row = {"problem": PROBLEM, "deepseek_reasoning": REASONING, "deepseek_solution": ANSWER,
           "ground_truth_solution": "Thus $\\boxed{42}$.", "domain": "math", "source": "numina_math"}
    path = _jsonl(tmp_path / "metadata.jsonl", [row])
    assert read_traces(path)[0].teacher == "openthoughts-metadata"
    with pytest.raises(UserError, match="row 0 has no answer, question, solution column: not a limo row"):
        read_traces(path, format="limo")
    with pytest.raises(UserError, match="unknown --format nope: known: r1-distill, openr1-math"):
        read_traces(path, format="nope")
    assert read_traces(_jsonl(tmp_path / "s1k.jsonl", [s1k_row()]), format="s1k-1.1")[0].reference_answer == "42"


def test_corrupt_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(limo_row()) + "\nnot json\n")
    with pytest.raises(UserError, match="x.jsonl:2: not a JSON line"):
        read_traces(path)
