"""Teacher-side throughput, in one run. Prints one JSON line.

* generate: traces/s and tokens/s of `r1-distill generate --backend openai` against a local
  `r1-distill serve` (tiny Qwen2 GGUF, 8 slots) at concurrency 1, 8 and 64, as a ratio to the same
  requests sent directly with the `openai` client (baseline);
* filter: traces/s of `r1-distill filter` on 2 x 500 MATH-500 traces (reference solutions, right and
  altered answers), decontaminated against AIME 2024.

    python bench/teacher.py [--requests 64] [--max-tokens 32]
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from common import machine  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def tiny_gguf(tmp: Path) -> Path:
    from r1_distill.export.pipeline import ExportConfig, export_gguf
    from r1_distill.tiny import TinySpec, build_tiny_model

    model = build_tiny_model(TinySpec(architecture="qwen2"))
    export_gguf(ExportConfig(model=str(model), out=str(tmp), quants=["Q4_K_M"], name="tiny", greedy_tokens=2))
    return tmp / "tiny-Q4_K_M.gguf"


async def direct(url: str, prompts: list[dict], concurrency: int, max_tokens: int, suffix: str) -> tuple[float, int]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="none", max_retries=6)
    gate = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(p):
        nonlocal tokens
        async with gate:
            r = await client.chat.completions.create(model="tiny-Q4_K_M", max_tokens=max_tokens, temperature=0.6,
                                                     top_p=0.95, messages=[{"role": "user", "content": f"{p['problem']}\n{suffix}"}])
            tokens += r.usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed, tokens


def main() -> None:
    from conftest import RunningServer
    from r1_distill.registry import load_registry
    from r1_distill.teacher.filter import FilterConfig, filter_traces
    from r1_distill.teacher.generate import GenerateConfig, generate
    from r1_distill.traces import TraceRecord, write_traces

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    suffix = load_registry().defaults.sampling.prompt_suffix
    rows = [json.loads(line) for line in (DATA / "gsm8k_train.jsonl").read_text().splitlines()[: args.requests]]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prompts = tmp / "prompts.jsonl"
        prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
        srv = RunningServer(tiny_gguf(tmp), "--parallel", "8", "--ctx", "1024", "--max-queue", "256")
        try:
            url = srv.url + "/v1"
            asyncio.run(direct(url, rows[:8], 8, 4, suffix))  # warm-up
            for c in (1, 8, 64):
                base_s, base_tokens = asyncio.run(direct(url, rows, c, args.max_tokens, suffix))
                summary = generate(GenerateConfig(teacher=url, prompts=str(prompts), out=str(tmp / f"out-{c}"), samples=1,
                                                  backend="openai", concurrency=c, max_tokens=args.max_tokens,
                                                  show_progress=False))
                results[str(c)] = {
                    "ours_traces_s": summary["traces_per_s"], "ours_tokens_s": summary["tokens_per_s"],
                    "direct_traces_s": round(len(rows) / base_s, 3), "direct_tokens_s": round(base_tokens / base_s, 1),
                    "ratio_traces_s": round(summary["traces_per_s"] / (len(rows) / base_s), 3),
                }
        finally:
            srv.stop()

        math = [json.loads(line) for line in (DATA / "math500.jsonl").read_text().splitlines()]
        records = []
        for i, r in enumerate(math):
            for k, answer in enumerate([r["answer"], f"-({r['answer']})"]):
                records.append(TraceRecord.from_completion(
                    problem_id=r["id"], problem=r["problem"], reference_answer=r["answer"], sample_index=k, teacher="ref",
                    backend="bench", completion=f"{r['solution']}\n</think>\n\nThe answer is \\boxed{{{answer}}}.",
                    finish_reason="stop"))
        write_traces(tmp / "math.jsonl", records)
        start = time.perf_counter()
        report = filter_traces(FilterConfig(traces=str(tmp / "math.jsonl"), out=str(tmp / "filtered"),
                                            decontaminate=[str(DATA / "aime2024.jsonl")], allow_code=True))
        filter_s = time.perf_counter() - start
    print(json.dumps({
        "bench": "teacher",
        "baseline": "the same chat requests sent directly with openai.AsyncOpenAI at the same concurrency",
        "server": "r1-distill serve, tiny Qwen2 Q4_K_M, 8 slots",
        "requests": len(rows), "max_tokens": args.max_tokens,
        "generate_by_concurrency": results,
        "filter": {"traces": len(records), "seconds": round(filter_s, 2), "traces_per_s": round(len(records) / filter_s, 1),
                   "kept": report["kept"]},
        **machine(),
    }))


if __name__ == "__main__":
    main()
