"""`filter` takes datasets hub ids as trace sources and as benchmarks: each is streamed row by row through
`datasets.load_dataset(..., streaming=True)` (never downloaded whole), with the config and split a source names.
No network here: load_dataset is replaced by one that serves rows in the public sets' own shapes."""

import datasets

from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.traces import read_traces

BENCH_PROBLEM = "How many vertices does a regular hexagon have, counted together with the edges that join them?"


def am_row(problem, reasoning, answer, reference):
    return {"messages": [
        {"role": "user", "content": problem, "info": {"source": "natural_reasoning", "reference_answer": reference,
                                                      "test_case": None}},
        {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n<answer>\nThe answer is $\\boxed{{{answer}}}$.\n</answer>",
         "info": {"source": "am-0309", "think_content": reasoning, "answer_content": f"The answer is $\\boxed{{{answer}}}$."}}]}


ROWS = [am_row("What is twelve divided by four?", "Twelve split into four equal parts gives 3 in each part, checked: 3 * 4 = 12.", 3, "3"),
        am_row("What is twelve minus four?", "Taking four away from twelve leaves 8, and 8 + 4 = 12 checks it.", 9, "8"),
        am_row(BENCH_PROBLEM, "A hexagon has six vertices and six edges, so together there are 12 of them.", 12, "12")]


def test_hub_ids_are_streamed_for_traces_and_benchmarks(tmp_path, monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, split=None, streaming=False, **kwargs):
        calls.append({"path": path, "name": name, "split": split, "streaming": streaming})
        assert streaming, "hub datasets must be streamed"
        if path == "a-m-team/AM-DeepSeek-R1-Distilled-1.4M":
            return datasets.IterableDataset.from_generator(lambda: iter(ROWS))
        bench = datasets.IterableDataset.from_generator(lambda: iter([{"problem": BENCH_PROBLEM, "answer": "12",
                                                                        "unique_id": "test/geometry/1.json"}]))
        return datasets.IterableDatasetDict({"test": bench})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    report = filter_traces(FilterConfig(traces=["a-m-team/AM-DeepSeek-R1-Distilled-1.4M:config=am_0.9M:split=train"],
                                        out=str(tmp_path / "out"), decontaminate=["HuggingFaceH4/MATH-500"], workers=1))

    assert {"path": "a-m-team/AM-DeepSeek-R1-Distilled-1.4M", "name": "am_0.9M", "split": "train", "streaming": True} in calls
    assert {"path": "HuggingFaceH4/MATH-500", "name": None, "split": None, "streaming": True} in calls
    assert report["input"] == 3 and report["kept"] == 1
    kept = read_traces(tmp_path / "out" / "kept.jsonl")
    assert [r.problem for r in kept] == ["What is twelve divided by four?"] and kept[0].teacher == "am-deepseek-r1"
    assert kept[0].meta["file"] == "hf://datasets/a-m-team/AM-DeepSeek-R1-Distilled-1.4M/am_0.9M@train"
    dropped = {r.problem: r for r in read_traces(tmp_path / "out" / "dropped.jsonl")}
    assert not dropped["What is twelve minus four?"].checks["correctness"].passed
    copied = dropped[BENCH_PROBLEM].checks["decontamination"]
    assert not copied.passed and "HuggingFaceH4/MATH-500:test/geometry/1.json" in copied.reason
    assert report["sources"] == {"a-m-team/AM-DeepSeek-R1-Distilled-1.4M:config=am_0.9M:split=train":
                                 {"input": 3, "kept": 1, "dropped": 2}}
