"""`r1-distill demo --fast`: every stage of the product, end to end on real tiny models, then a rerun
that skips them all, then the printed chat command opening the app on the exported student."""

import json
import shlex
import subprocess
import sys
import time

import pytest

from r1_distill.demo.pipeline import STAGES
from r1_distill.demo.task import cold_start_traces, make_splits

pytestmark = pytest.mark.slow


def test_splits_never_overlap_and_are_seeded():
    a = make_splits({"train": 300, "prompt": 100, "heldout": 100}, seed=3)
    cores = {s: {(p.start, p.changes) for p in a[s]} for s in a}
    assert not (cores["train"] & cores["prompt"]) and not (cores["train"] & cores["heldout"])
    assert not (cores["prompt"] & cores["heldout"])
    assert a == make_splits({"train": 300, "prompt": 100, "heldout": 100}, seed=3)
    rows = cold_start_traces(a["train"], slip_rate=0.5, vague_rate=0.0)
    assert all(r["answer"].count("\\boxed{") == 1 for r in rows)
    assert {r["slipped"] for r in rows} == {True, False}
    clean = cold_start_traces(a["train"][:20], slip_rate=0.0)
    assert all(f"\\boxed{{{r['problem'].answer}}}" in r["answer"] for r in clean)


def test_fast_demo_runs_every_stage_reruns_nothing_and_its_chat_command_works(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "r1_distill", "demo", "--fast", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    state = json.loads((out / "state.json").read_text())
    assert list(state["stages"]) == STAGES
    assert set(report["accuracy"]) == {"teacher-sft", "teacher-grpo", "student-untrained", "student", "student-control",
                                       "student-onpolicy", "student-coldstart", "arm-sft", "arm-opd", "arm-grpo",
                                       "student-Q4_K_M"}
    compute = report["compute"]
    assert compute["student"]["teacher_sequences"] == 96 and compute["student"]["student_tokens_sampled"] == 0
    assert compute["student-onpolicy"]["teacher_sequences"] > 0 and compute["student-onpolicy"]["student_tokens_sampled"] > 0
    # the three arms start from one cold start on some of the filtered traces, and OPD's rollouts are the recipe's
    arms, cold = report["arms"], report["student_coldstart"]
    kept = report["filter_funnel"]["kept"]
    assert cold["traces"] == min(12, kept // 2) and cold["pool"] == kept - cold["traces"]
    assert arms["opd"]["samples_per_prompt"] == 4 and arms["opd"]["divergence"] == "reverse KL"
    assert arms["opd"]["compute"]["teacher_forward_passes"] == 4 * cold["pool"]  # every pool prompt, 4 rollouts
    assert arms["grpo"]["steps"] >= 1 and compute["arm-grpo"]["student_tokens_sampled"] > 0
    assert compute["arm-grpo"]["teacher_tokens"] == compute["student-coldstart"]["teacher_tokens"]
    assert all(compute[arm]["teacher_tokens"] > compute["student-coldstart"]["teacher_tokens"] for arm in ("arm-sft", "arm-opd"))
    assert "onpolicy_matches_sft_with_less_teacher_compute" not in report["checks"] and "coldstart_below_teacher" in report["checks"]
    findings = report["findings"]
    assert {"opd_at_or_above_continued_sft_per_teacher_token", "opd_at_or_above_grpo_at_matched_rollouts",
            "onpolicy_from_untrained_matches_sft"} <= set(findings)
    assert all(isinstance(f["holds"], bool) for f in findings.values())
    assert "findings (the literature's claims, measured here):" in first.stdout
    assert report["onpolicy_vs_sft"]["teacher_tokens_ratio"] > 0
    assert "compute, cold start + on-policy distillation: teacher" in first.stdout
    assert all(0 <= a["pass@1"] <= 1 for a in report["accuracy"].values())
    assert report["filter_funnel"]["generated"] == 48 * 2 and set(report["stage_seconds"]) == set(STAGES) - {"report"}
    assert set(report["export"]["files"]) == {"Q8_0", "Q4_K_M"} and (out / "report.png").stat().st_size > 10_000
    assert "rewards" in report["teacher_grpo"] and report["sampling"]["generated"] == 96

    started = time.time()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stderr.count("done earlier, skipped") == len(STAGES)
    assert json.loads((out / "report.json").read_text())["accuracy"] == report["accuracy"]
    assert time.time() - started < 60

    chat_line = next(line.strip() for line in first.stdout.splitlines() if line.strip().startswith("r1-distill chat"))
    _chat_answers_with_thinking_apart(shlex.split(chat_line))

    # --seeds: each seed's run in OUT/seed-N (a finished run moved there is still that run), the report over them
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    out.rename(seeds / "seed-0")
    over = subprocess.run([sys.executable, "-m", "r1_distill", "demo", "--fast", "--seeds", "0", "--out", str(seeds)],
                          capture_output=True, text=True, timeout=300)
    assert over.returncode == 0 and over.stderr.count("done earlier, skipped") == len(STAGES), over.stderr[-2000:]
    summary = json.loads((seeds / "report.json").read_text())
    assert summary["seeds"] == [0] and (seeds / "report.png").stat().st_size > 10_000
    assert summary["arms"]["arm-opd"]["pass@1"] == {"0": report["accuracy"]["arm-opd"]["pass@1"]}
    assert "findings over the seeds:" in over.stdout


def _chat_answers_with_thinking_apart(command):
    import httpx
    from gradio_client import Client

    from support import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "r1_distill", *command[1:], "--no-browser", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        client = Client(url, verbose=False)
        history, _ = client.predict("Ann has 5 pens. Ann gets 2 more. How many pens does Ann have?", [], 0.6, 0.95,
                                    64, 0, api_name="/chat")
        thinking = history[1]
        assert thinking["role"] == "assistant" and thinking["metadata"]["title"].startswith("Thought for")
        assert all(m["role"] in ("user", "assistant") for m in history) and len(history) >= 2
    finally:
        proc.terminate()
        proc.wait(timeout=20)
