"""The vLLM backend's calls: thousands of sequences each (vLLM schedules continuously inside a call, but
a call ends with its slowest sample), a prompt's samples never split, and what a crash between calls
leaves on disk resumable. vLLM itself is replaced by a stand-in module: no model, no GPU."""

import json
import sys
import types

import pytest

from r1_distill.teacher.backends import VLLM_CHUNK_SEQUENCES, chunk_groups
from r1_distill.teacher.generate import GenerateConfig, generate
from r1_distill.traces import read_traces


def _groups(*sizes):
    return [[(f"p{i}", k) for k in range(size)] for i, size in enumerate(sizes)]


def test_chunks_hold_at_most_the_budget_and_never_split_a_prompt():
    chunks = list(chunk_groups(_groups(4, 4, 3, 4, 1), max_sequences=8))
    assert [[len(g) for g in chunk] for chunk in chunks] == [[4, 4], [3, 4, 1]]


def test_a_prompt_with_more_samples_than_the_budget_is_a_chunk_of_its_own():
    chunks = list(chunk_groups(_groups(2, 16, 2), max_sequences=8))
    assert [[len(g) for g in chunk] for chunk in chunks] == [[2], [16], [2]]
    assert list(chunk_groups([], max_sequences=8)) == []


class _StandInLLM:
    """Answers llm.chat like vLLM's offline engine; fails the call numbered `crash_on`."""

    calls: list[int] = []
    crash_on = None

    def __init__(self, **kwargs):
        pass

    def chat(self, conversations, params, use_tqdm=False):
        type(self).calls.append(sum(p.n for p in params))
        if len(type(self).calls) == type(self).crash_on:
            raise RuntimeError("engine died")
        sample = types.SimpleNamespace(text="42 </think> \\boxed{42}", finish_reason="stop", token_ids=[1, 2, 3])
        return [types.SimpleNamespace(prompt_token_ids=[1], outputs=[sample] * p.n) for p in params]


class _Params:
    def __init__(self, n, **kwargs):
        self.n = n


@pytest.fixture
def stand_in_vllm(monkeypatch):
    _StandInLLM.calls, _StandInLLM.crash_on = [], None
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=_StandInLLM, SamplingParams=_Params))
    return _StandInLLM


def _prompts(tmp_path, n):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + 0?", "answer": str(i)}) + "\n"
                            for i in range(n)))
    return path


def test_vllm_gets_thousands_of_sequences_a_call_and_a_crash_keeps_the_calls_done(stand_in_vllm, tmp_path):
    prompts = VLLM_CHUNK_SEQUENCES // 4 + 100  # at 4 samples: one full call and a short one
    config = GenerateConfig(teacher="org/stand-in", backend="vllm", prompts=str(_prompts(tmp_path, prompts)),
                            out=str(tmp_path / "traces"), samples=4, max_tokens=8, seed=1, concurrency=64,
                            show_progress=False)
    stand_in_vllm.crash_on = 2
    with pytest.raises(RuntimeError, match="engine died"):
        generate(config)
    assert stand_in_vllm.calls == [VLLM_CHUNK_SEQUENCES, 400]  # not 64-prompt calls (--concurrency)
    assert len(read_traces(tmp_path / "traces")) == VLLM_CHUNK_SEQUENCES  # the first call's records are on disk

    stand_in_vllm.calls, stand_in_vllm.crash_on = [], None
    summary = generate(config)  # the rerun samples only what the crash lost
    assert stand_in_vllm.calls == [400]
    assert summary["generated"] == 400 and len(read_traces(tmp_path / "traces")) == prompts * 4
