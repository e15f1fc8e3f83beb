"""The demo's arms from one SFT cold start (r1_distill/demo/report.py), on figures written by hand: each arm's
teacher tokens include the cold start's share of the sampling, GRPO adds none, and the literature's claims are
findings with their numbers, whichever way they go, never checks (a known negative result prints no FAIL)."""

from r1_distill.demo.report import arms_findings, distillation_compute


def _stages():
    sft = {"trained_on": 10, "mean_tokens": 50.0, "epochs": 2}
    onpolicy = {"compute": {"teacher_forward_passes": 40, "teacher_tokens": 4000, "student_sampled_tokens": 2400}}
    return {"filter": {"kept": 100}, "student-distill": {**sft, "trained_on": 100}, "student-onpolicy": onpolicy,
            "student-coldstart": {**sft, "traces": 20}, "arm-sft": {**sft, "traces": 8}, "arm-opd": onpolicy,
            "arm-grpo": {"student_sampled_tokens": 2000}}


def test_arms_are_charged_the_cold_start_and_their_own_teacher_tokens():
    compute = distillation_compute(_stages(), {"teacher_sequences": 400, "teacher_tokens": 50_000})
    assert compute["student"]["teacher_tokens"] == 50_000 and compute["student"]["student_tokens_trained"] == 10_000
    assert compute["student-coldstart"]["teacher_tokens"] == 10_000  # 20 of 100 kept traces: a fifth of the sampling
    assert compute["arm-sft"]["teacher_tokens"] == 10_000 + 4_000 and compute["arm-opd"]["teacher_tokens"] == 14_000
    assert compute["arm-grpo"]["teacher_tokens"] == 10_000 and compute["arm-grpo"]["student_tokens_sampled"] == 2000


def test_the_literature_claims_are_findings_with_their_numbers_either_way():
    compute = distillation_compute(_stages(), {"teacher_sequences": 400, "teacher_tokens": 50_000})

    def acc(p, se=0.02):
        return {"pass@1": p, "pass@1_stderr": se}

    accuracy = {"student": acc(0.8), "student-onpolicy": acc(0.07), "student-coldstart": acc(0.3), "arm-sft": acc(0.4),
                "arm-opd": acc(0.5), "arm-grpo": acc(0.35)}
    f = arms_findings(accuracy, compute)
    assert f["opd_at_or_above_continued_sft_per_teacher_token"]["holds"] is True
    assert f["opd_at_or_above_continued_sft_per_teacher_token"]["opd"]["gain_per_million_teacher_tokens"] == 50.0
    assert f["opd_at_or_above_grpo_at_matched_rollouts"]["grpo"]["teacher_tokens_added"] == 0
    assert f["onpolicy_from_untrained_matches_sft"]["holds"] is False  # the documented negative result
    accuracy["arm-opd"] = acc(0.2)
    f = arms_findings(accuracy, compute)
    assert not f["opd_at_or_above_continued_sft_per_teacher_token"]["holds"] and not f["opd_improves_on_the_coldstart"]["holds"]
