"""`demo --seeds`: the report over seeds. Each model's and arm's pass@1 per seed with the mean and its standard
error across seeds; each finding per seed and pooled over the seeds' paired differences; a bad list is one line."""

import statistics
import subprocess
import sys

import pytest

from r1_distill.demo.seeds import parse_seeds, write_seeds_report
from r1_distill.errors import UserError

ARMS = ("student-coldstart", "arm-sft", "arm-opd", "arm-grpo")


def demo_report(p: dict, *, opd_beats_sft: bool, teacher_tokens: dict) -> dict:
    """The parts of a demo's report.json that the report over seeds reads, as write_report makes them."""
    names = ("teacher-grpo", "student", *ARMS)
    return {
        "accuracy": {n: {"pass@1": p[n], "pass@1_stderr": 0.01, "cons@K": p[n], "label": n} for n in names},
        "compute": {n: {"teacher_tokens": teacher_tokens[n], "student_tokens_sampled": 100 if n in ("arm-opd", "arm-grpo") else 0}
                    for n in ARMS},
        "findings": {"opd_at_or_above_continued_sft_per_teacher_token": {"holds": opd_beats_sft},
                     "opd_at_or_above_grpo_at_matched_rollouts": {"holds": True},
                     "opd_improves_on_the_coldstart": {"holds": True},
                     "onpolicy_from_untrained_matches_sft": {"holds": False}},
        "checks": {"grpo_raises_teacher_pass@1": True}, "all_checks_pass": True, "total_seconds": 10.0,
        "heldout_problems": 200, "samples_per_problem": 4}


def test_means_standard_errors_compute_and_pooled_findings(tmp_path):
    opd, sft = [0.10, 0.20, 0.30], [0.12, 0.14, 0.16]
    tokens = {"student-coldstart": 1000, "arm-sft": 3000, "arm-opd": 3100, "arm-grpo": 1000}
    reports = {seed: demo_report({"teacher-grpo": 0.5, "student": 0.6, "student-coldstart": 0.05, "arm-sft": sft[i],
                                  "arm-opd": opd[i], "arm-grpo": 0.07}, opd_beats_sft=i > 0, teacher_tokens=tokens)
               for i, seed in enumerate((0, 1, 2))}
    report = write_seeds_report(tmp_path, reports)
    arm = report["arms"]["arm-opd"]
    assert arm["pass@1"] == {"0": 0.10, "1": 0.20, "2": 0.30} and arm["mean"] == 0.2
    assert arm["stderr"] == pytest.approx(statistics.stdev(opd) / 3 ** 0.5, abs=1e-4)
    assert arm["teacher_tokens_added_mean"] == 2100 and report["arms"]["arm-grpo"]["teacher_tokens_added_mean"] == 0
    finding = report["findings"]["opd_at_or_above_continued_sft_per_teacher_token"]
    assert finding["holds_on"] == "2 of 3 seeds" and finding["holds_per_seed"]["0"] is False
    diffs = [o - s for o, s in zip(opd, sft)]
    assert finding["difference_mean"] == pytest.approx(statistics.fmean(diffs), abs=1e-4) and finding["pooled_holds"]
    assert report["findings"]["onpolicy_from_untrained_matches_sft"]["holds_on"] == "0 of 3 seeds"
    assert (tmp_path / "report.png").stat().st_size > 10_000 and (tmp_path / "report.json").is_file()


def test_a_pooled_finding_fails_when_the_arm_is_below_by_more_than_two_standard_errors(tmp_path):
    tokens = {"student-coldstart": 1000, "arm-sft": 3000, "arm-opd": 3000, "arm-grpo": 1000}
    reports = {seed: demo_report({"teacher-grpo": 0.5, "student": 0.6, "student-coldstart": 0.05, "arm-sft": 0.30 + d,
                                  "arm-opd": 0.10 + d, "arm-grpo": 0.07}, opd_beats_sft=False, teacher_tokens=tokens)
               for seed, d in ((0, 0.0), (1, 0.01), (2, 0.02))}
    finding = write_seeds_report(tmp_path, reports)["findings"]["opd_at_or_above_continued_sft_per_teacher_token"]
    assert finding["difference_mean"] == pytest.approx(-0.2, abs=1e-4) and finding["pooled_holds"] is False


def test_bad_seed_lists_are_one_line():
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for bad in ("a,b", "1,1", ","):
        with pytest.raises(UserError, match="--seeds"):
            parse_seeds(bad)
    r = subprocess.run([sys.executable, "-m", "r1_distill", "demo", "--seeds", "0,x", "--out", "/nonexistent/x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--seeds" in r.stderr
