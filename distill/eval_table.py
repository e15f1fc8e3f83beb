"""`r1-distill eval --bench aime24,math500,gpqa-diamond,lcb`: R1's Table 5 for one model.

Each named benchmark of models.yaml (r1_distill.benchmarks) is prepared into a prompt file in the form of
its harness, evaluated into `OUT/NAME` as any bench is (resumable, one folder each), and the results go
into one table beside the published figures of the nearest released R1-Distill student:
`OUT/table.json` (and `OUT/summary.json`), `OUT/table.md`, `OUT/table.png`, `OUT/card_rows.md`,
`OUT/results.jsonl` (every benchmark's problems), and the same rows in the model's card when --model is a
folder `r1-distill train` wrote.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Optional

from r1_distill.benchmarks import BenchRun, named_benches, prepare, write_prepared
from r1_distill.errors import UserError
from r1_distill.files import write_json_atomic, write_text_atomic
from r1_distill.registry import Registry, load_registry, registry_path

CARD_HEADER = "## R1 Table 5 benchmarks"


def evaluate_named(config) -> Optional[dict]:
    """The table of the named benchmarks `config.bench` lists, or None when it names none."""
    from .evaluate import evaluate_file

    registry = load_registry(config.models_file)
    runs = named_benches(config.bench, registry)
    if runs is None:
        return None
    from r1_distill.grading.code import require_sandbox_for
    from r1_distill.grading.remote import parse_spec

    parse_spec(config.sandbox)
    out = Path(config.out)
    records = [prepare(run, since=config.since, until=config.until, tests_dir=out / run.name / "prompts" / "tests")
               for run in runs]
    require_sandbox_for((r["answer"] for rs in records for r in rs), config.sandbox)  # all before any sampling
    prepared = [(run, write_prepared(rs, out / run.name / "prompts")) for run, rs in zip(runs, records)]
    models_file = bench_sampling_registry(config.models_file, out)
    student = compare_student(config.model, registry, config.compare_with)
    rows = []
    for run, path in prepared:
        summary = evaluate_file(replace(config, bench=str(path), out=str(out / run.name), models_file=models_file,
                                        samples=config.samples or run.bench.samples, problem_field="problem",
                                        answer_field="answer", id_field="id", split="train"), card=False)
        rows.append(bench_row(run, summary, student, registry))
    table = {"model": config.model, "compare_with": student,
             "released_as": registry.students[student].released_as if student else None, "benches": rows}
    write_table(table, out)
    add_card_rows(Path(config.model), card_rows(table))
    return table


def bench_sampling_registry(models_file: Optional[str], out: Path) -> str:
    """The registry with an empty prompt suffix: a benchmark's prompt is the whole user turn."""
    import yaml

    source = registry_path(models_file)
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["defaults"]["sampling"]["prompt_suffix"] = ""
    data.pop("benchmarks", None)  # their files are relative to the source's folder, and sampling needs none
    path = out / "sampling-models.yaml"
    text = "# written by r1-distill eval: " + str(source) + " with the benchmarks' prompts as the whole user turn\n"
    text += yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return str(path)


def model_params_b(model: str, registry: Registry) -> Optional[float]:
    """The model's size in billions of parameters, where it can be read: a GGUF's tensors, a folder's
    safetensors headers, or a released student named by hub id or registry teacher."""
    path = Path(model)
    try:
        if path.is_file() and path.suffix == ".gguf":
            from gguf import GGUFReader

            return sum(int(t.n_elements) for t in GGUFReader(str(path)).tensors) / 1e9
        if path.is_dir() and list(path.glob("*.safetensors")):
            from safetensors import safe_open

            total = 0
            for f in path.glob("*.safetensors"):
                with safe_open(str(f), framework="pt") as handle:
                    total += sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())
            return total / 1e9
    except Exception:  # an unreadable file: no size, the smallest student stands in
        return None
    hub_id = registry.teachers[model].model if model in registry.teachers else model
    return next((s.params_b for s in registry.students.values() if s.released_as and s.released_as == hub_id), None)


def compare_student(model: str, registry: Registry, chosen: Optional[str]) -> Optional[str]:
    """The released student whose published figures go beside ours: `chosen`, else the nearest in size."""
    published = {s for b in registry.benchmarks.values() for p in b.published for s in p.figures}
    if chosen:
        if chosen not in published:
            raise UserError(f"--compare-with {chosen}: no published figures for it in models.yaml (there are for: "
                            f"{', '.join(sorted(published)) or 'none'})")
        return chosen
    if not published:
        return None
    size = model_params_b(model, registry)
    by_size = sorted(published, key=lambda s: registry.students[s].params_b)
    if size is None or size <= 0:
        return by_size[0]
    return min(by_size, key=lambda s: abs(math.log(registry.students[s].params_b / size)))


def bench_row(run: BenchRun, summary: dict, student: Optional[str], registry: Registry) -> dict:
    k = summary["K"]
    published = [{"source": p.source, "label": p.label or p.source, **p.figures[student]}
                 for p in run.bench.published if student in p.figures]
    return {"bench": run.name, "format": run.bench.format, "source": run.source, "problems": summary["problems"],
            "K": k, "pass@1": summary["pass@1"], "pass@1_stderr": summary["pass@1_stderr"],
            "cons@K": None if run.bench.format == "livecodebench" else summary["cons@K"],
            "pass@k": summary.get("pass@k", {}), "truncation_rate": summary["truncation_rate"],
            "published": published}


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _published_columns(table: dict) -> list[tuple[str, str]]:
    """(source label, metric) for every published figure the table shows, in order of first appearance."""
    columns: list[tuple[str, str]] = []
    for row in table["benches"]:
        for pub in row["published"]:
            columns += [(pub["label"], m) for m in ("pass@1", "cons@64") if m in pub and (pub["label"], m) not in columns]
    return columns


def table_rows(table: dict) -> tuple[list[str], list[list[str]]]:
    """The table's header and rows (percent), ours beside the published figures."""
    columns = _published_columns(table)
    header = ["benchmark", "problems", "K", "pass@1 (± s.e.)", "cons@K", "pass@K",
              *[f"{label} {metric}" for label, metric in columns]]
    rows = []
    for r in table["benches"]:
        last_k = list(r["pass@k"].values())[-1] if r["pass@k"] else None
        figures = {(p["label"], m): p[m] for p in r["published"] for m in ("pass@1", "cons@64") if m in p}
        rows.append([r["bench"], str(r["problems"]), str(r["K"]), f"{_pct(r['pass@1'])} ± {_pct(r['pass@1_stderr'])}",
                     _pct(r["cons@K"]), _pct(last_k),
                     *[f"{figures[c]:.1f}" if c in figures else "-" for c in columns]])
    return header, rows


def _sources(table: dict) -> list[str]:
    """What the published columns are: whose figures, from where."""
    who = (table.get("released_as") or table.get("compare_with") or "").split("/")[-1]
    seen = {}
    for row in table["benches"]:
        for pub in row["published"]:
            seen.setdefault(pub["label"], pub["source"])
    return [f"{label}: {who}, {source}" for label, source in seen.items()]


def format_bench_table(table: dict) -> str:
    header, rows = table_rows(table)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    return (f"{table['model']}: pass@1 and cons@K in percent, K samples a problem\n" + "\n".join(lines)
            + "".join(f"\n  {s}" for s in _sources(table)))


def card_rows(table: dict) -> str:
    header, rows = table_rows(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = "".join(f"\n- {s}" for s in _sources(table))
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n" + (notes[1:] + "\n" if notes else "")


def write_table(table: dict, out: Path) -> None:
    """table.json (also as summary.json), table.md, card_rows.md, table.png, and results.jsonl: every
    benchmark's per-problem results, each with its benchmark's name."""
    import json

    write_json_atomic(out / "table.json", table)
    write_json_atomic(out / "summary.json", table)
    lines = []
    for row in table["benches"]:
        for line in (out / row["bench"] / "results.jsonl").read_text(encoding="utf-8").splitlines():
            lines.append(json.dumps({"bench": row["bench"], **json.loads(line)}, ensure_ascii=False) + "\n")
    write_text_atomic(out / "results.jsonl", "".join(lines))
    write_text_atomic(out / "table.md", card_rows(table))
    write_text_atomic(out / "card_rows.md", f"{CARD_HEADER}\n\n{card_rows(table)}")
    plot_table(table, out / "table.png")


def plot_table(table: dict, path: Path) -> None:
    """Our pass@1 (with its standard error) beside the published one, a pair of bars per benchmark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = table["benches"]
    xs = range(len(benches))
    ours = [100 * b["pass@1"] for b in benches]
    errors = [100 * b["pass@1_stderr"] for b in benches]
    theirs = [b["published"][0].get("pass@1", 0.0) if b["published"] else 0.0 for b in benches]
    source = next((b["published"][0]["label"] for b in benches if b["published"]), "published")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(benches) + 2), 4.5))
    ax.bar([x - 0.2 for x in xs], ours, 0.4, yerr=errors, capsize=3, label=Path(str(table["model"])).name[:40])
    who = (table.get("released_as") or "published").split("/")[-1]
    ax.bar([x + 0.2 for x in xs], theirs, 0.4, label=f"{who} ({source})")
    ax.set_xticks(list(xs), [b["bench"] for b in benches])
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 110)
    ax.set_title("pass@1: ours (standard error) beside the published figure")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_card_rows(model: Path, rows_md: str) -> None:
    """The table as a section of the model card `r1-distill train` wrote (replaced on a later run)."""
    card = model / "README.md"
    if not model.is_dir() or not card.is_file():
        return
    text = card.read_text(encoding="utf-8")
    if "r1-distill" not in text[:300]:
        return
    if CARD_HEADER in text:
        head, _, rest = text.partition(CARD_HEADER)
        after = rest.split("\n## ", 1)
        text = head.rstrip("\n") + ("\n\n## " + after[1] if len(after) > 1 else "")
    write_text_atomic(card, text.rstrip("\n") + f"\n\n{CARD_HEADER}\n\n{rows_md}")
