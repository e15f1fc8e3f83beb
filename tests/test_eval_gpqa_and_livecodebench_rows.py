"""Acceptance 1 of issue 23: files in GPQA Diamond's and LiveCodeBench code_generation_lite's row shapes evaluate
through `r1-distill eval --bench gpqa-diamond=FILE,lcb=FILE`: right letters and right programs (stdin and
functional, public and private tests, in the real sandbox) are counted right, wrong ones wrong, a letter named
only while thinking is not taken, and problems outside R1's contest window are left out.

The model is a scripted OpenAI-compatible endpoint (a tiny model cannot answer right): for each problem it
gives, request by request, the completions listed here."""

import json
import re
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from support import JsonHandler, stand_in_server
from r1_distill.grading.sandbox import bwrap_path

DATA = Path(__file__).parent / "data"
RIGHT_SUM = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
RIGHT_SUM_MAIN = "```python\nimport sys\ndef main():\n    a, b = map(int, sys.stdin.read().split())\n    print(a + b)\n\nif __name__ == '__main__':\n    main()\n```"
WRONG_SUM = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"
RIGHT_CALL = ("```python\nclass Solution:\n    def runningSumShift(self, nums: List[int], k: int) -> List[int]:\n"
              "        out, total = [], 0\n        for x in nums:\n            total += x\n            out.append(total + k)\n"
              "        print('debug output is ignored')\n        return out\n```")
RIGHT_CALL_TUPLE = ("```python\nclass Solution:\n    def runningSumShift(self, nums, k):\n"
                    "        return tuple(sum(nums[:i + 1]) + k for i in range(len(nums)))\n```")
WRONG_CALL = "```python\nclass Solution:\n    def runningSumShift(self, nums, k):\n        return [x + k for x in nums]\n```"


def _letter_of(prompt: str, text: str) -> str:
    return re.search(rf"^([ABCD])\) {re.escape(text)}$", prompt, re.M).group(1)


def _wrong_letter(right: str) -> str:
    return "A" if right != "A" else "B"


def _script(prompt: str) -> list[str]:
    """The completions for one problem, in request order."""
    if "ideal gas" in prompt:
        r = _letter_of(prompt, "It doubles")
        return [f"P/T is constant.\n</think>\n\nAnswer: {r}", f"so {r}\n</think>\n\nThe answer is **{r}**.",
                f"hmm\n</think>\n\nAnswer: {_wrong_letter(r)}"]
    if "adenine" in prompt:
        r = _letter_of(prompt, "Thymine")
        return [f"It is {r}, Answer: {r}\n</think>\n\nI am not sure.",  # the letter only while thinking
                f"Answer: {r}, still thinking",  # the thinking never closed
                f"\n</think>\n\nAnswer: {_wrong_letter(r)}"]
    if "hybridization" in prompt:
        r = _letter_of(prompt, "sp")
        return [f"two domains\n</think>\n\nAnswer: {r}"] * 3
    if "Print A+B" in prompt:
        return [f"easy\n</think>\n\n{RIGHT_SUM}", f"\n</think>\n\n{RIGHT_SUM_MAIN}", f"\n</think>\n\n{WRONG_SUM}"]
    if "runningSumShift" in prompt:
        return [f"\n</think>\n\n{RIGHT_CALL}", f"\n</think>\n\n{RIGHT_CALL_TUPLE}", f"\n</think>\n\n{WRONG_CALL}"]
    raise AssertionError(f"unexpected prompt: {prompt[:200]}")


class ScriptedModel(JsonHandler):
    served = defaultdict(int)
    prompts = []
    lock = threading.Lock()

    def do_GET(self):
        self.send_json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self):
        body = self.read_json()
        prompt = body["messages"][-1]["content"]
        with self.lock:
            self.prompts.append(prompt)
            key = prompt[:400]
            text = _script(prompt)[self.served[key]]
            self.served[key] += 1
        closed = "</think>" in text
        self.send_json(200, {"id": "c", "object": "chat.completion", "created": 0, "model": "scripted",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop" if closed else "length"}],
                             "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}})


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap")
def test_gpqa_and_livecodebench_rows_are_graded_right_and_wrong(tmp_path):
    out = tmp_path / "eval"
    bench = f"gpqa-diamond={DATA / 'gpqa_diamond_rows.jsonl'},lcb={DATA / 'code_generation_lite_rows.jsonl'}"
    with stand_in_server(ScriptedModel) as url:
        run = subprocess.run([sys.executable, "-m", "r1_distill", "eval", "--model", url + "/v1", "--bench", bench,
                              "--out", str(out), "--samples", "3", "--workers", "2"],
                             capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    gpqa = {r["id"]: r for r in map(json.loads, (out / "gpqa-diamond" / "results.jsonl").read_text().splitlines())}
    assert {k: r["correct"] for k, r in gpqa.items()} == {"recTEST0001": 2, "recTEST0002": 0, "recTEST0003": 3}
    assert "not taken" in " ".join(gpqa["recTEST0002"]["verdicts"]) and "no letter" in " ".join(gpqa["recTEST0002"]["verdicts"])
    assert gpqa["recTEST0001"]["consensus"] == 1.0 and gpqa["recTEST0002"]["consensus"] == 0.0  # the letters vote
    lcb = {r["id"]: r for r in map(json.loads, (out / "lcb" / "results.jsonl").read_text().splitlines())}
    assert set(lcb) == {"abc900_a", "9001"}  # 1900A (2024-06) is before R1's window
    assert lcb["abc900_a"]["correct"] == 2 and lcb["9001"]["correct"] == 2
    assert any("wrong output" in v for v in lcb["abc900_a"]["verdicts"])
    assert any("wrong result" in v for v in lcb["9001"]["verdicts"])
    reference = json.loads(json.loads((out / "lcb" / "results.jsonl").read_text().splitlines()[0])["reference"])
    assert reference["code_tests"]["limits"]["wall_s"] == 6 and len(reference["code_tests"]["tests"]) == 3
    table = json.loads((out / "table.json").read_text())
    rows = {r["bench"]: r for r in table["benches"]}
    assert rows["gpqa-diamond"]["pass@1"] == pytest.approx(5 / 9) and rows["lcb"]["pass@1"] == pytest.approx(4 / 6)
    assert "gpqa-diamond" in run.stdout and "lcb" in run.stdout
    # the prompts are the harness's: lighteval's GPQA instruction and LiveCodeBench's, nothing appended; the 6 s per test
    gpqa_prompt = next(p for p in ScriptedModel.prompts if "adenine" in p)
    assert gpqa_prompt.startswith("Answer the following multiple choice question.")
    assert re.search(r"\nD\) [^\n]+$", gpqa_prompt) and "boxed" not in gpqa_prompt
    assert any("You will use the following starter code" in p for p in ScriptedModel.prompts)
