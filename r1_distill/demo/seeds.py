"""`r1-distill demo --seeds 0,1,2`: the demo once per seed (each in OUT/seed-N, skipped where finished) and
OUT/report.json and report.png over them: every model's pass@1 per seed with the mean and its standard
error across seeds, the arms from the cold start with the teacher tokens they added, and each finding
per seed and pooled."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

from r1_distill.errors import UserError
from r1_distill.files import write_json_atomic

ARMS = [("student-coldstart", "SFT cold start"), ("arm-sft", "+ continued SFT"),
        ("arm-opd", "+ on-policy distillation"), ("arm-grpo", "+ GRPO (verifier)")]
# each pooled finding: the arm and what it is compared with (paired over the seeds)
POOLED = {"opd_at_or_above_continued_sft_per_teacher_token": ("arm-opd", "arm-sft"),
          "opd_at_or_above_grpo_at_matched_rollouts": ("arm-opd", "arm-grpo"),
          "opd_improves_on_the_coldstart": ("arm-opd", "student-coldstart")}


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise UserError(f"--seeds {text!r}: give whole numbers separated by commas, e.g. --seeds 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: give one or more distinct seeds, e.g. --seeds 0,1,2")
    return seeds


def run_seeds(config, seeds: list[int], run_one) -> dict:
    """`run_one(config)` for each seed's config (out: OUT/seed-N), then the report over them."""
    out = Path(config.out)
    reports = {seed: run_one(replace(config, seed=seed, out=str(out / f"seed-{seed}"))) for seed in seeds}
    return write_seeds_report(out, reports)


def _spread(values: list[float]) -> dict:
    """Mean and its standard error across seeds (the seeds' spread: data, models and sampling all move)."""
    mean = statistics.fmean(values)
    stderr = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None
    return {"mean": round(mean, 4), "stderr": None if stderr is None else round(stderr, 4)}


def seeds_report(reports: dict[int, dict]) -> dict:
    seeds = sorted(reports)
    first = reports[seeds[0]]
    accuracy = {}
    for name, a in first["accuracy"].items():
        values = [reports[s]["accuracy"][name]["pass@1"] for s in seeds]
        accuracy[name] = {"label": a["label"], "pass@1": dict(zip(map(str, seeds), values)), **_spread(values)}
    arms = {}
    for name, label in ARMS:
        added = [reports[s]["compute"][name]["teacher_tokens"] - reports[s]["compute"]["student-coldstart"]["teacher_tokens"]
                 for s in seeds]
        total = [reports[s]["compute"][name]["teacher_tokens"] for s in seeds]
        sampled = [reports[s]["compute"][name]["student_tokens_sampled"] for s in seeds]
        arms[name] = {"label": label, **accuracy[name], "teacher_tokens_added": dict(zip(map(str, seeds), added)),
                      "teacher_tokens_added_mean": round(statistics.fmean(added)),
                      "teacher_tokens_mean": round(statistics.fmean(total)),  # the cold start's included
                      "student_tokens_sampled_mean": round(statistics.fmean(sampled))}
    findings = {}
    for name in first["findings"]:
        per_seed = {str(s): reports[s]["findings"][name]["holds"] for s in seeds}
        finding = {"holds_per_seed": per_seed, "holds_on": f"{sum(per_seed.values())} of {len(seeds)} seeds"}
        if name in POOLED:
            arm, other = POOLED[name]
            diffs = [reports[s]["accuracy"][arm]["pass@1"] - reports[s]["accuracy"][other]["pass@1"] for s in seeds]
            spread = _spread(diffs)
            # pooled: the mean paired difference over seeds, within two of its standard errors (above zero to improve)
            margin = 2 * (spread["stderr"] or 0.0)
            holds = spread["mean"] > 0 if name == "opd_improves_on_the_coldstart" else spread["mean"] >= -margin
            finding.update({"pooled_holds": holds, "difference": f"{arm} - {other}", "difference_mean": spread["mean"],
                            "difference_stderr": spread["stderr"]})
        findings[name] = finding
    return {"seeds": seeds, "runs": len(seeds), "accuracy": accuracy, "arms": arms, "findings": findings,
            "all_checks_pass": {str(s): reports[s]["all_checks_pass"] for s in seeds},
            "failed_checks": {str(s): [c for c, ok in reports[s]["checks"].items() if not ok] for s in seeds},
            "total_seconds": {str(s): reports[s]["total_seconds"] for s in seeds},
            "heldout_problems": first["heldout_problems"], "samples_per_problem": first["samples_per_problem"]}


def write_seeds_report(out: Path, reports: dict[int, dict]) -> dict:
    report = seeds_report(reports)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "report.json", report)
    _plot(out / "report.png", report)
    return report


def _plot(path: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.5))
    seeds = [str(s) for s in report["seeds"]]
    names = list(report["accuracy"])
    for i, name in enumerate(names):
        a = report["accuracy"][name]
        left.bar(i, a["mean"], color="#4477aa", alpha=0.6, yerr=2 * (a["stderr"] or 0.0), capsize=3)
        left.scatter([i] * len(seeds), [a["pass@1"][s] for s in seeds], color="black", s=10, zorder=3)
    left.set_xticks(range(len(names)), [report["accuracy"][n]["label"] for n in names], rotation=30, ha="right",
                    fontsize=8)
    left.set(title=f"pass@1 over seeds {', '.join(seeds)}: mean, 2 SE across seeds, each seed a dot", ylim=(0, 1))
    colors = {"student-coldstart": "gray", "arm-sft": "#4477aa", "arm-opd": "#ee6677", "arm-grpo": "#228833"}
    for name, arm in report["arms"].items():
        right.errorbar([arm["teacher_tokens_added_mean"]], [arm["mean"]], yerr=[2 * (arm["stderr"] or 0.0)], fmt="o",
                       capsize=4, color=colors[name], label=f"{arm['label']} {arm['mean']:.1%}")
        right.scatter([arm["teacher_tokens_added"][s] for s in seeds], [arm["pass@1"][s] for s in seeds],
                      color=colors[name], s=12, alpha=0.5)
    right.set(title="Arms from one SFT cold start per seed (mean, 2 SE; dots: seeds)", xlabel="teacher tokens added",
              ylabel="pass@1")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
