"""Serving speed: `r1-distill serve` against llama.cpp's own `llama-server`, same GGUF, same run.

    python bench/serve.py [--gguf FILE] [--tokens 64] [--build-only] [--threads N]

llama-server is built once from the installed llama-cpp-python's source distribution (the same
llama.cpp version; fetched with pip like export's converter, then cached under
~/.cache/r1-distill/llama-server-<version>/; offline afterwards). Both servers run with their defaults
(threads: each picks its own), with the same slots and context per slot; `--threads N` pins both.
Default model: a random-weight model of Qwen2.5-1.5B's shape (28 layers, hidden 1536, 152k vocab)
quantized to Q4_K_M; speed does not depend on the weights' values. Built once and cached.

Figures, for each server: single-stream decode tok/s; time to first token of a short prompt after a 2k-token
one (`single_ttft_s`) and of new short prompts between turns of conversations of 800 to 3,200 tokens
(`mixed_fresh_ttft_s`, their mean); time to first token of a request whose 2k-token
prefix the server has seen before (a repeated system prompt / a chat's history); aggregate tok/s and
mean time to first token at 4 and 8 concurrent streams. Ratios are ours / llama-server's. One JSON line.
`--speculative` adds speculative decoding against llama-server's (see bench/serve_speculative.py).
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from r1_distill.files import cache_root  # noqa: E402
from r1_distill.server_process import stop_process, wait_healthy  # noqa: E402
from r1_distill.tiny import TinySpec, build_tiny_model  # noqa: E402

QWEN25_15B = TinySpec(architecture="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, dtype="bfloat16")
PROMPT = "Please reason step by step, and put your final answer within \\boxed{}. What is the sum of the first 20 primes?"


# -- llama-server, built once from the runtime's own source -------------------------------------------
def llama_server_binary(version: str | None = None) -> Path:
    """llama.cpp's llama-server of the installed llama-cpp-python's version (built on first use)."""
    from r1_distill.export.converter import runtime_version

    version = version or runtime_version()
    target = cache_root() / f"llama-server-{version}" / "llama-server"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               f"llama-cpp-python=={version}", "-d", str(tmp)]
        subprocess.run(cmd, check=True)
        sdist = next(tmp.glob("llama_cpp_python-*.tar.gz"))
        src = tmp / "src"
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/vendor/llama.cpp/", 1)
                if len(parts) == 2 and parts[1] and (member.isfile() or member.isdir()):
                    member.name = parts[1]
                    tar.extract(member, src, filter="data")
        build = tmp / "build"
        subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
                        "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                        "-DLLAMA_BUILD_SERVER=ON", "-DBUILD_SHARED_LIBS=OFF"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(os.cpu_count() or 2)],
                       check=True, stdout=subprocess.DEVNULL)
        shutil.copy2(build / "bin" / "llama-server", target.with_suffix(".tmp"))
        os.replace(target.with_suffix(".tmp"), target)
    return target


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


# -- measuring one server -------------------------------------------------------------------------
def long_prefix(words: int = 1000) -> str:
    """About 2k tokens of text that every request in the prefix test starts with."""
    return "Notes. " + " ".join(f"item{i} costs {i % 97} coins;" for i in range(words // 4))


async def stream_once(http, prompt: str, max_tokens: int, seed: int) -> dict:
    """Time to first token, decode rate and token count of one streamed, greedy /v1/completions call."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "seed": seed, "stream": True,
            "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = None
    chunks, usage = 0, None
    async with http.stream("POST", "/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage = data["usage"]
            if data.get("choices") and data["choices"][0].get("text"):
                chunks += 1
                if first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    tokens = usage["completion_tokens"] if usage else chunks
    first = first or end
    return {"ttft_s": first - start, "tokens": tokens, "decode_s": end - first, "wall_s": end - start}


async def measure_round(url: str, tokens: int, round_: int) -> dict:
    """One round of every figure against one server (round 0 also warms it and fills its 2k prefix)."""
    import httpx

    # a fresh connection per request: llama-server (cpp-httplib) may close an idle keep-alive one under us
    async with httpx.AsyncClient(base_url=url, timeout=1800, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        if round_ == 0:
            await stream_once(http, PROMPT, 4, 0)  # warm-up
            await stream_once(http, long_prefix() + " Question: what is item7?", 4, 2)  # the prefix, cold
        one = await stream_once(http, PROMPT, tokens, 1)
        warm = await stream_once(http, long_prefix() + f" Question: what is item{9 + round_}?", 4, 3)
        figures = {"single_decode_tok_s": (one["tokens"] - 1) / one["decode_s"], "single_ttft_s": one["ttft_s"],
                   "repeated_2k_prefix_ttft_s": warm["ttft_s"]}
        # a mixed sequence: conversations of other lengths take turns in the slots, a new short prompt after each
        fresh = []
        for j, words in enumerate((1600, 400, 1000)):
            await stream_once(http, f"Conversation {round_}-{j}. " + long_prefix(words) + " And then?", 4, 20 + j)
            fresh.append((await stream_once(http, f"New question {round_}-{j}: what is {j} plus {round_}?", 4, 30 + j))["ttft_s"])
        figures["mixed_fresh_ttft_s"] = statistics.mean(fresh)
        for n in (4, 8):
            t0 = time.perf_counter()
            runs = await asyncio.gather(*(stream_once(http, f"Round {round_} question {n}-{i}: {PROMPT}", tokens, 10 + i)
                                          for i in range(n)))
            wall = time.perf_counter() - t0
            figures[f"aggregate_tok_s_{n}"] = sum(r["tokens"] for r in runs) / wall
            figures[f"mean_ttft_s_{n}"] = sum(r["ttft_s"] for r in runs) / n
    return figures


def medians(rounds: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]}


class LlamaServer:
    def __init__(self, binary: Path, gguf: Path, parallel: int, ctx: int, threads: int | None, log: Path):
        from r1_distill.server_process import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port), "-np", str(parallel),
               "-c", str(ctx * parallel)]
        if threads:
            cmd += ["-t", str(threads), "-tb", str(threads)]
        self._log = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        state = wait_healthy(self.url, 600, alive=lambda: self.proc.poll() is None)
        if state != "ok":
            self.stop()
            raise RuntimeError(f"llama-server did not come up ({state}): {log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main() -> None:
    from r1_distill.llama.threads import physical_cores
    from r1_distill.server_process import ServerProcess

    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="pin both servers' threads (default: each its own)")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--ctx", type=int, default=4096, help="context per slot, both servers")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; figures are medians")
    parser.add_argument("--speculative", action="store_true",
                        help="also speculative decoding against llama-server's (bench/serve_speculative.py's pairs, "
                             "draft length 3), in the same line under 'speculative'")
    args = parser.parse_args()
    binary = llama_server_binary()
    gguf = Path(args.gguf) if args.gguf else real_size_gguf()
    logs = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    load_before = os.getloadavg()
    extra = ["--threads", str(args.threads)] if args.threads else []
    # both servers up at once, measured in alternation, round after round: a machine whose load drifts
    # (shared CPUs) weighs on both alike; each figure is the median over the rounds
    ours_srv = ServerProcess(gguf, "--parallel", str(args.parallel), "--ctx", str(args.ctx), *extra,
                             log=logs / "ours.log", timeout_s=600)
    try:
        theirs_srv = LlamaServer(binary, gguf, args.parallel, args.ctx, args.threads, logs / "llama-server.log")
        try:
            rounds: dict[str, list[dict]] = {"ours": [], "llama_server": []}
            for r in range(args.rounds):
                for name, srv in (("ours", ours_srv), ("llama_server", theirs_srv)):
                    rounds[name].append(asyncio.run(measure_round(srv.url, args.tokens, r)))
        finally:
            theirs_srv.stop()
    finally:
        ours_srv.stop()
    ours, theirs = medians(rounds["ours"]), medians(rounds["llama_server"])
    speculative = None
    if args.speculative:
        import serve_speculative as spec

        spec_args = argparse.Namespace(tokens=96, draft_max=3, rounds=min(args.rounds, 2), threads=args.threads)
        pairs = {"agreeing": spec.pair_figures(spec_args, *spec.agreeing_pair(cache_root() / "bench"), binary, logs,
                                               "agreeing", lookup=spec.supports_lookup(binary)),
                 "own_quant": spec.pair_figures(spec_args, *spec.real_size_pair(), binary, logs, "own_quant", lookup=False)}
        speculative = {"pairs": pairs, "goals_met": spec.goals(pairs)}
    ratios = {
        "single_stream_decode": ratio(ours["single_decode_tok_s"], theirs["single_decode_tok_s"]),
        "ttft_repeated_2k_prefix": ratio(ours["repeated_2k_prefix_ttft_s"], theirs["repeated_2k_prefix_ttft_s"]),
        "ttft_fresh_short_prompt_after_long": ratio(ours["single_ttft_s"], theirs["single_ttft_s"]),
        "ttft_fresh_short_prompt_mixed_sequence": ratio(ours["mixed_fresh_ttft_s"], theirs["mixed_fresh_ttft_s"]),
        **{f"aggregate_tok_s_{n}": ratio(ours[f"aggregate_tok_s_{n}"], theirs[f"aggregate_tok_s_{n}"]) for n in (4, 8)},
        **{f"mean_ttft_{n}": ratio(ours[f"mean_ttft_s_{n}"], theirs[f"mean_ttft_s_{n}"]) for n in (4, 8)},
    }
    goals = {"single_stream_decode >= 0.97": (ratios["single_stream_decode"] or 0) >= 0.97,
             "ttft_repeated_2k_prefix <= 1.2": (ratios["ttft_repeated_2k_prefix"] or 9) <= 1.2,
             "ttft_fresh_short_prompt_after_long <= 1.2": (ratios["ttft_fresh_short_prompt_after_long"] or 9) <= 1.2,
             "ttft_fresh_short_prompt_mixed_sequence <= 1.2": (ratios["ttft_fresh_short_prompt_mixed_sequence"] or 9) <= 1.2,
             **{f"aggregate_tok_s_{n} >= 0.95": (ratios[f"aggregate_tok_s_{n}"] or 0) >= 0.95 for n in (4, 8)},
             **{f"mean_ttft_{n} <= 1.2": (ratios[f"mean_ttft_{n}"] or 9) <= 1.2 for n in (4, 8)}}
    print(json.dumps({
        "bench": "serve", "model": gguf.name, "baseline": f"llama.cpp llama-server of the same version ({binary})",
        "threads": args.threads or f"each server's default (ours: physical cores = {physical_cores()})",
        "parallel": args.parallel, "ctx_per_slot": args.ctx, "tokens": args.tokens, "rounds": args.rounds,
        "ours": ours, "llama_server": theirs, "ratios_ours_over_llama_server": ratios, "goals_met": goals,
        **({"speculative": speculative} if speculative else {}),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        **machine(),
    }))


if __name__ == "__main__":
    if "--build-only" in sys.argv:
        print(llama_server_binary())
    else:
        main()
