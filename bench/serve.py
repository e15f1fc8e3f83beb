"""Serving speed: `r1-distill serve` versus llama-cpp-python called in-process on the same GGUF and
threads, in the same run. Prints one JSON line.

    python bench/serve.py [--gguf FILE] [--tokens 48] [--threads N]

Default model: a random-weight model of Qwen2.5-1.5B's shape (28 layers, hidden 1536, 152k vocab)
quantized to Q4_K_M; speed does not depend on the weights' values. Built once and cached.
Figures: decode tokens/s and time to first token for one stream (server vs in-process), and
aggregate tokens/s at 1, 4 and 8 concurrent streams through the server (continuous batching).
llama.cpp's own llama-server of the same version is measured too when it is on PATH.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import machine  # noqa: E402

from r1_distill.files import cache_root  # noqa: E402
from r1_distill.tiny import TinySpec, build_tiny_model  # noqa: E402

QWEN25_15B = TinySpec(architecture="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, dtype="bfloat16")
PROMPT = "Please reason step by step, and put your final answer within \\boxed{}. What is the sum of the first 20 primes?"


def real_size_gguf() -> Path:
    target = cache_root() / "bench" / "qwen2.5-1.5b-shape-Q4_K_M.gguf"
    if target.is_file():
        return target
    from r1_distill.export.converter import run_converter
    from r1_distill.export.quantize import quantize

    model = build_tiny_model(QWEN25_15B)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        f16 = Path(tmp) / "f16.gguf"
        run_converter(model, f16, "f16")
        quantize(f16, Path(tmp) / "q.gguf", "Q4_K_M")
        os.replace(Path(tmp) / "q.gguf", target)
    shutil.rmtree(model, ignore_errors=True)  # 3 GB of bf16 weights: the GGUF is what we keep
    return target


def in_process(gguf: Path, tokens: int, threads: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    llm.create_completion(prompt, max_tokens=4, temperature=0)  # warm-up
    llm.reset()
    start = time.perf_counter()
    first, count = None, 0
    for _ in llm.create_completion(prompt, max_tokens=tokens, temperature=0, stream=True):
        count += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    llm.close()
    return {"ttft_s": round(first - start, 4), "decode_tok_s": round((count - 1) / (end - first), 2), "tokens": count}


async def stream_once(client, tokens: int, seed: int) -> tuple[float, float, int, float]:
    """(time to first token, end time, tokens, start time) of one streamed completion."""
    start = time.perf_counter()
    first, count = None, 0
    stream = await client.completions.create(model="m", prompt=PROMPT, max_tokens=tokens, temperature=0, seed=seed,
                                             stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].text:
            count += 1
            if first is None:
                first = time.perf_counter()
    return first - start, time.perf_counter(), count, start


async def through_server(url: str, tokens: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=600)
    await stream_once(client, 4, 0)  # warm-up
    ttft, end, count, start = await stream_once(client, tokens, 1)
    single = {"ttft_s": round(ttft, 4), "decode_tok_s": round((count - 1) / (end - start - ttft), 2), "tokens": count}
    aggregate = {}
    for n in (1, 4, 8):
        t0 = time.perf_counter()
        results = await asyncio.gather(*(stream_once(client, tokens, i) for i in range(n)))
        wall = time.perf_counter() - t0
        aggregate[str(n)] = round(sum(r[2] for r in results) / wall, 2)
    return {"single": single, "aggregate_tok_s": aggregate}


def main() -> None:
    from conftest import RunningServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    gguf = Path(args.gguf) if args.gguf else real_size_gguf()
    baseline = in_process(gguf, args.tokens, args.threads)
    srv = RunningServer(gguf, "--threads", str(args.threads), "--parallel", "8", "--ctx", "1024")
    try:
        ours = asyncio.run(through_server(srv.url, args.tokens))
    finally:
        srv.stop()
    llama_server = shutil.which("llama-server")
    print(json.dumps({
        "bench": "serve",
        "model": gguf.name,
        "baseline": "llama-cpp-python in-process, same file and threads, greedy",
        "threads": args.threads,
        "in_process": baseline,
        "server": ours,
        "decode_ratio_server_vs_in_process": round(ours["single"]["decode_tok_s"] / baseline["decode_tok_s"], 3),
        "ttft_ratio_server_vs_in_process": round(ours["single"]["ttft_s"] / baseline["ttft_s"], 3),
        "aggregate_speedup_8_vs_1": round(ours["aggregate_tok_s"]["8"] / ours["aggregate_tok_s"]["1"], 3),
        "llama_server": "not on PATH: not measured" if llama_server is None else llama_server,
        **machine(),
    }))


if __name__ == "__main__":
    main()
