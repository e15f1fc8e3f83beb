"""`r1-distill filter` at scale: peak memory and traces/s against the number of traces. Prints one JSON line.

Synthetic traces of R1's length (--trace-kb, default 22 KB: paragraphs of reasoning with arithmetic steps,
then `</think>` and an answer in \\boxed{}), --samples per problem, some answers wrong, some traces
duplicated within their problem, a few problems asked twice under two ids; written as our JSONL records.
Each size is filtered in a fresh subprocess (grading on every core), its process tree's resident memory
(the filter process, the fork server and the grading workers, summed) sampled every 0.2 s; the peak of
that sum is `peak_rss_mb` (`main_max_rss_mb`: the filter process alone, from getrusage). traces/s is
the filter's own (report.json: input / seconds, reading to writing).

Goals: the peak at the largest size within 1.2x of the peak at the smallest, at most 1.5 GB at any size,
and traces/s at the largest size at least that at the smallest.

    python bench/filter_scale.py [--sizes 10000,40000,160000] [--trace-kb 22] [--samples 4] [--workers N]
"""

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from common import machine  # noqa: E402

WORDS = ("the value of each term we need sum product first second third number side angle area square root factor "
         "prime divisor remainder equation solve for so then now check again wait let me think about this carefully "
         "which means that gives us since because therefore hence thus case where when if only both either neither "
         "term coefficient polynomial degree integer rational real positive negative even odd greater smaller equal "
         "triangle circle radius diameter length width height volume count ways choose arrange order digit base "
         "multiply divide add subtract difference ratio fraction percent probability expected outcome event").split()
RUN_CODE = """
import json, resource, sys
from r1_distill.teacher.filter import FilterConfig, filter_traces
report = filter_traces(FilterConfig(traces=sys.argv[1], out=sys.argv[2], workers=int(sys.argv[3]) if sys.argv[3] else None))
print(json.dumps({k: report[k] for k in ("input", "kept", "dropped", "seconds", "traces_per_s", "grading")}
                 | {"main_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
    if rng.random() < 0.4:
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        words += [str(a), "+", str(b), "=", str(a + b)]
    return " ".join(words).capitalize() + "."


def trace(rng: random.Random, chars: int, answer: int) -> str:
    paragraphs, size = [], 0
    while size < chars:
        paragraph = " ".join(sentence(rng) for _ in range(rng.randint(4, 9)))
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs) + f"\n</think>\n\nSo the answer is $\\boxed{{{answer}}}$."


def write_traces(path: Path, n: int, trace_chars: int, samples: int, seed: int = 0) -> int:
    """n records, `samples` per problem: ~20% wrong answers, ~5% exact duplicates of the sample before,
    ~1% of problems asked again under another id. Returns the file's bytes."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        written, problem, text = 0, 0, ""
        while written < n:
            answer = rng.randint(1, 10_000)
            if not (text and rng.random() < 0.01):  # else the problem before, again, under a new id
                text = f"Problem {problem}: " + sentence(rng) + f" What is the {rng.choice(WORDS)} of {problem}?"
            previous = None
            for k in range(min(samples, n - written)):
                if previous is not None and rng.random() < 0.05:
                    completion = previous
                else:
                    completion = trace(rng, trace_chars, answer if rng.random() < 0.8 else answer + 1)
                previous = completion
                fh.write(json.dumps({
                    "problem_id": f"p{problem:07d}", "problem": text, "reference_answer": str(answer), "sample_index": k,
                    "teacher": "synthetic-r1", "backend": "bench", "completion": completion,
                    "reasoning": completion.partition("\n</think>")[0], "answer": completion.rpartition("</think>\n\n")[2],
                    "finish_reason": "stop", "completion_tokens": len(completion.split()),
                    "created_at": "2026-01-01T00:00:00.000+00:00"}, ensure_ascii=False) + "\n")
                written += 1
            problem += 1
    return path.stat().st_size


def tree_rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_filter(traces: Path, out: Path, workers: str) -> dict:
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", RUN_CODE, str(traces), str(out), workers],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    watched, peak, procs, listed = psutil.Process(child.pid), 0, [], 0.0
    while child.poll() is None:
        try:
            if time.monotonic() - listed > 2:  # finding the tree walks every process: not at every sample
                procs, listed = [watched, *watched.children(recursive=True)], time.monotonic()
            peak = max(peak, tree_rss(procs))
        except psutil.Error:
            pass
        time.sleep(0.2)
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"filter failed on {traces}:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "peak_rss_mb": round(peak / 2 ** 20, 1), "main_max_rss_mb": round(result["main_max_rss_mb"], 1),
            "wall_s": round(time.perf_counter() - started, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,40000,160000", help="Comma-separated numbers of traces.")
    parser.add_argument("--trace-kb", type=float, default=22.0, help="Length of a trace in KB (R1's: tens of KB).")
    parser.add_argument("--samples", type=int, default=4, help="Traces per problem.")
    parser.add_argument("--workers", default="", help="Grading processes (default: every core).")
    parser.add_argument("--tmp", default=None, help="Folder for the traces and the outputs (default: a temp dir).")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for n in sizes:
            traces = Path(tmp) / f"traces-{n}.jsonl"
            size = write_traces(traces, n, int(args.trace_kb * 1024), args.samples)
            result = run_filter(traces, Path(tmp) / f"out-{n}", args.workers)
            results[str(n)] = {"input_mb": round(size / 2 ** 20, 1), **result}
            traces.unlink()
            shutil.rmtree(Path(tmp) / f"out-{n}")  # free the disk for the next size
            print(f"[filter_scale] {n} traces: {results[str(n)]}", file=sys.stderr, flush=True)
    small, large = results[str(sizes[0])], results[str(sizes[-1])]
    peak_ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    speed_ratio = large["traces_per_s"] / small["traces_per_s"]
    max_peak = max(r["peak_rss_mb"] for r in results.values())
    print(json.dumps({
        "bench": "filter_scale", "trace_kb": args.trace_kb, "samples_per_problem": args.samples, "sizes": results,
        "goals": {"peak_ratio": round(peak_ratio, 3), "peak_ratio_goal": 1.2, "peak_ratio_met": peak_ratio <= 1.2,
                  "max_peak_mb": max_peak, "max_peak_goal_mb": 1536, "max_peak_met": max_peak <= 1536,
                  "speed_ratio": round(speed_ratio, 3), "speed_ratio_goal": 1.0, "speed_ratio_met": speed_ratio >= 1.0},
        **machine(),
    }))


if __name__ == "__main__":
    main()
