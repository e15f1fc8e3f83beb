"""report.json (every figure, each stage's wall time, and the R1 claims checked) and report.png."""

from __future__ import annotations

import json
from pathlib import Path

from r1_distill.files import write_json_atomic

MODELS = [("teacher-sft", "eval-teacher-sft", "teacher, cold-start SFT"),
          ("teacher-grpo", "eval-teacher-grpo", "teacher, + GRPO"),
          ("student-untrained", "eval-student-untrained", "student, untrained"),
          ("student", "eval-student", "student, distilled (filtered)"),
          ("student-control", "eval-control", "student, control (unfiltered)"),
          ("student-onpolicy", "eval-student-onpolicy", "student, on-policy distilled"),
          ("student-sft-onpolicy", "eval-student-sft-onpolicy", "student, SFT then on-policy"),
          ("student-Q4_K_M", "eval-student-gguf", "student, Q4_K_M GGUF")]


def sampling_compute(traces: Path) -> dict:
    """What the teacher spent writing the traces that SFT learns from: every sampled trace counts,
    kept or not (filtering throws most away)."""
    from r1_distill.traces import read_traces

    records = read_traces(traces)
    return {"teacher_sequences": len(records),
            "teacher_tokens": sum((r.prompt_tokens or 0) + (r.completion_tokens or 0) for r in records)}


def distillation_compute(stages: dict, sampling: dict) -> dict:
    """Teacher and student compute of each distilled student, in tokens: the teacher's tokens are the
    ones it processed (sampling: prompt and generated tokens; on-policy: the sequences it scored),
    the student's are the ones it trained on (forward and backward) and the ones it sampled itself."""
    sft = stages["student-distill"]
    sft_tokens = round(sft["trained_on"] * sft["mean_tokens"] * sft["epochs"])
    rows = {"student": {"teacher_sequences": sampling["teacher_sequences"], "teacher_tokens": sampling["teacher_tokens"],
                        "student_tokens_trained": sft_tokens, "student_tokens_sampled": 0}}
    for name in ("student-onpolicy", "student-sft-onpolicy"):
        c = stages[name]["compute"]
        # GKD trains the student on the very sequences the teacher scored: the same tokens
        rows[name] = {"teacher_sequences": c["teacher_forward_passes"], "teacher_tokens": c["teacher_tokens"],
                      "student_tokens_trained": c["teacher_tokens"], "student_tokens_sampled": c["student_sampled_tokens"]}
    rows["student-sft-onpolicy"] = {k: v + rows["student"][k] for k, v in rows["student-sft-onpolicy"].items()}
    return rows


def _not_worse(a: dict, b: dict) -> bool:
    """pass@1 of a within two standard errors (of the difference) below b's, or above it."""
    se = ((a.get("pass@1_stderr") or 0.0) ** 2 + (b.get("pass@1_stderr") or 0.0) ** 2) ** 0.5
    return a["pass@1"] >= b["pass@1"] - 2 * se


def write_report(out: Path, state: dict) -> dict:
    stages = state["stages"]
    accuracy = {name: {"pass@1": stages[stage]["pass@1"], "pass@1_stderr": stages[stage].get("pass@1_stderr"),
                       "cons@K": stages[stage]["cons@K"], "label": label}
                for name, stage, label in MODELS}
    p = {name: a["pass@1"] for name, a in accuracy.items()}
    compute = distillation_compute(stages, sampling_compute(out / "traces"))
    checks = {
        "grpo_raises_teacher_pass@1": p["teacher-grpo"] > p["teacher-sft"],
        "student_reaches_80pct_of_teacher": p["student"] >= 0.8 * p["teacher-grpo"],
        "student_30_points_over_untrained": p["student"] - p["student-untrained"] >= 0.30,
        "student_beats_unfiltered_control": p["student"] > p["student-control"],
        "q4_k_m_within_5_points_of_hf_student": abs(p["student-Q4_K_M"] - p["student"]) <= 0.05,
        # on-policy distillation's claim (GKD; Qwen3): SFT's accuracy for less compute; and SFT then on-policy helps
        "onpolicy_matches_sft_with_less_teacher_compute": (
            _not_worse(accuracy["student-onpolicy"], accuracy["student"])
            and compute["student-onpolicy"]["teacher_tokens"] < compute["student"]["teacher_tokens"]),
        "sft_then_onpolicy_not_below_sft": _not_worse(accuracy["student-sft-onpolicy"], accuracy["student"]),
    }
    filt = stages["filter"]
    gguf = out / "gguf" / "student-Q4_K_M.gguf"
    report = {
        "accuracy": accuracy, "checks": checks, "all_checks_pass": all(checks.values()),
        "samples_per_problem": stages["eval-teacher-sft"]["K"], "heldout_problems": stages["eval-teacher-sft"]["problems"],
        "data": stages["data"],
        "teacher_sft": stages["teacher-sft"], "teacher_grpo": stages["teacher-grpo"],
        "sampling": stages["sample"],
        "filter_funnel": {"generated": filt["input"], "kept": filt["kept"], "dropped_by_first_reason": filt["dropped_by_first_reason"],
                          "control_share_correct": filt["control_correct"]},
        "student_distill": stages["student-distill"], "student_control": stages["student-control"],
        "student_onpolicy": stages["student-onpolicy"], "student_sft_onpolicy": stages["student-sft-onpolicy"],
        "compute": compute,
        "onpolicy_vs_sft": {
            "pass@1": {"on-policy": p["student-onpolicy"], "sft": p["student"], "sft then on-policy": p["student-sft-onpolicy"]},
            "teacher_tokens_ratio": round(compute["student-onpolicy"]["teacher_tokens"] / compute["student"]["teacher_tokens"], 3),
            "student_tokens_ratio": round((compute["student-onpolicy"]["student_tokens_trained"]
                                           + compute["student-onpolicy"]["student_tokens_sampled"])
                                          / compute["student"]["student_tokens_trained"], 3)},
        "export": stages["export-student"],
        "stage_seconds": {name: s["seconds"] for name, s in stages.items()},
        "total_seconds": round(sum(s["seconds"] for name, s in stages.items()), 1),
        "config": state["config"],
        "chat_command": f"r1-distill chat --model {gguf}",
    }
    write_json_atomic(out / "report.json", report)
    _plot(out, report)
    return report


def _history(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def _plot(out: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0][0]
    names = list(report["accuracy"])
    labels = [report["accuracy"][n]["label"] for n in names]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [report["accuracy"][n]["pass@1"] for n in names], width=0.4, label="pass@1", color="#4477aa")
    ax.bar([i + 0.2 for i in x], [report["accuracy"][n]["cons@K"] for n in names], width=0.4,
           label=f"cons@{report['samples_per_problem']}", color="#66ccee")
    ax.set_xticks(list(x), labels, rotation=25, ha="right", fontsize=8)
    ax.set(title=f"Held-out accuracy ({report['heldout_problems']} problems)", ylim=(0, 1))
    ax.legend()

    ax = axes[0][1]
    funnel = report["filter_funnel"]
    steps = [("generated", funnel["generated"])]
    remaining = funnel["generated"]
    for reason, n in sorted(funnel["dropped_by_first_reason"].items(), key=lambda kv: -kv[1]):
        remaining -= n
        steps.append((f"- {reason}", remaining))
    ax.barh([s[0] for s in steps][::-1], [s[1] for s in steps][::-1], color="#228833")
    ax.set(title=f"Filter funnel: {funnel['kept']} of {funnel['generated']} teacher traces kept", xlabel="traces")

    ax = axes[1][0]
    for folder, label in (("teacher-sft", "teacher cold-start SFT"), ("student", "student (filtered)"),
                          ("student-control", "student (unfiltered control)"),
                          ("student-onpolicy", f"student on-policy ({report['student_onpolicy'].get('divergence', '')})"),
                          ("student-sft-onpolicy",
                           f"student SFT then on-policy ({report['student_sft_onpolicy'].get('divergence', '')})")):
        points = [(h["step"], h["loss"]) for h in _history(out / "models" / folder / "log_history.json") if "loss" in h]
        if points:
            ax.plot(*zip(*points), label=label)
    ax.set(title="Distillation loss (SFT: cross-entropy; on-policy: the divergence)", xlabel="step", ylabel="loss",
           yscale="log")
    ax.legend()

    ax = axes[1][1]
    history = _history(out / "models" / "teacher-grpo" / "log_history.json")
    for key in sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")}):
        points = [(h["step"], h[key]) for h in history if key in h]
        steps_, values = zip(*points)
        window = max(1, len(values) // 10)
        smooth = [sum(values[max(0, i - window + 1): i + 1]) / len(values[max(0, i - window + 1): i + 1]) for i in range(len(values))]
        ax.plot(steps_, smooth, label=key.split("/")[1])
    ax.set(title="Teacher GRPO rewards (moving mean)", xlabel="step", ylim=(0, 1.05))
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=100)
    plt.close(fig)
