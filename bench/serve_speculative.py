"""Speculative decoding: `r1-distill serve --draft / --lookup` against llama-server's `--spec-type draft-simple -md`
and `--spec-type ngram-simple`, the same pair and draft length, in the same run, on this machine.

    python bench/serve_speculative.py [--tokens 128] [--draft-max 3] [--rounds 3] [--threads N] [--pairs agreeing,own_quant]

Pairs: "agreeing" (:mod:`speculative_pair`: a Qwen2.5-1.5B-shape target that computes what its 0.5B-size
random draft computes: the best case of acceptance, at a real target's cost), "agreeing_7b" (the same
construction at the issue's sizes: a Qwen2.5-7B-shape target, 4.7 GB as Q4_K_M, drafted by a 1.5B-shape model;
off by default: it is built through about 15 GB of bf16 shards and 15 GB of F16 GGUF on disk, and decodes at a
few tokens/s on 2 cores) and "own_quant" (a random
Qwen2.5-1.5B-shape model's Q8_0 drafted by its own Q4_K_M: they agree about one token in twelve). Both
servers draft with a minimum probability of 0 (llama-server's default). Lookup runs on the agreeing target.

Figures, for each pair and mode (plain, draft model, lookup), each server: single-stream greedy decode tok/s
(median over rounds) and the draft acceptance rate (ours from /metrics, llama-server's from its log); ratios:
each server's speculative over its own plain decode, and ours over llama-server's. One JSON line.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from serve import QWEN25_15B, llama_server_binary  # noqa: E402
from speculative_pair import agreeing_pair  # noqa: E402

from r1_distill.files import cache_root  # noqa: E402
from r1_distill.server_process import ServerProcess, free_port, stop_process, wait_healthy  # noqa: E402
from r1_distill.tiny import build_tiny_model  # noqa: E402

PROMPT = ("Please reason step by step, and put your final answer within \\boxed{}. A train leaves at 3 pm and "
          "travels 120 km at 80 km/h. When does it arrive?")


def real_size_pair() -> tuple[Path, Path]:
    """(target Q8_0, draft Q4_K_M) of one random-weight Qwen2.5-1.5B-shape model, built once and cached."""
    folder = cache_root() / "bench"
    target, draft = folder / "qwen2.5-1.5b-shape-Q8_0.gguf", folder / "qwen2.5-1.5b-shape-Q4_K_M.gguf"
    if target.is_file() and draft.is_file():
        return target, draft
    import shutil

    from r1_distill.export.converter import run_converter
    from r1_distill.export.quantize import quantize

    model = build_tiny_model(QWEN25_15B)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        f16 = Path(tmp) / "f16.gguf"
        run_converter(model, f16, "f16")
        for path, quant in ((target, "Q8_0"), (draft, "Q4_K_M")):  # both from the same weights
            quantize(f16, Path(tmp) / "q.gguf", quant)
            os.replace(Path(tmp) / "q.gguf", path)
    shutil.rmtree(model, ignore_errors=True)
    return target, draft


class LlamaServer:
    """llama.cpp's own server with the given extra flags (its speculative ones)."""

    def __init__(self, binary: Path, gguf: Path, extra: list[str], threads: int | None, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port), "-np", "1",
               "-c", "4096", *extra]
        if threads:
            cmd += ["-t", str(threads), "-tb", str(threads)]
        self._log = open(log, "w")
        self.log_path = log
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        state = wait_healthy(self.url, 600, alive=lambda: self.proc.poll() is None)
        if state != "ok":
            self.stop()
            raise RuntimeError(f"llama-server did not come up ({state}): {log.read_text()[-2000:]}")

    def acceptance(self) -> float | None:
        """llama-server logs 'draft acceptance rate = 0.xx (  a accepted /  n generated)' per request."""
        found = re.findall(r"\((\s*\d+) accepted /\s*(\d+) generated\)", self.log_path.read_text())
        accepted, drafted = sum(int(a) for a, _ in found), sum(int(n) for _, n in found)
        return round(accepted / drafted, 3) if drafted else None

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


async def decode_rate(url: str, tokens: int) -> float:
    """Greedy single-stream decode tok/s of one streamed /v1/completions call (after its first token)."""
    import httpx

    body = {"prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    first = usage = None
    async with httpx.AsyncClient(base_url=url, timeout=1800, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        async with http.stream("POST", "/v1/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                data = json.loads(line[6:])
                usage = data.get("usage") or usage
                if first is None and data.get("choices") and data["choices"][0].get("text"):
                    first = time.perf_counter()
    end = time.perf_counter()
    return (usage["completion_tokens"] - 1) / (end - first)


def our_acceptance(url: str) -> float | None:
    import httpx

    text = httpx.get(url + "/metrics").text
    values = dict(line.split() for line in text.splitlines() if line.startswith("r1_distill_draft_tokens"))
    drafted = float(values.get("r1_distill_draft_tokens_total", 0))
    return round(float(values["r1_distill_draft_tokens_accepted_total"]) / drafted, 3) if drafted else None


def measure(mode: str, args, target: Path, draft: Path | None, binary: Path, logs: Path, tag: str) -> dict:
    """Both servers in one mode, measured in alternation round after round; medians."""
    ours_flags = {"plain": [], "draft": ["--draft", str(draft), "--draft-max", str(args.draft_max), "--draft-p-min", "0"],
                  "lookup": ["--lookup", str(args.draft_max)]}[mode]
    theirs_flags = {"plain": [], "draft": ["--spec-type", "draft-simple", "-md", str(draft), "--spec-draft-n-max",
                                           str(args.draft_max), "--spec-draft-p-min", "0"],
                    "lookup": ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3",
                               "--spec-ngram-simple-size-m", str(args.draft_max)]}[mode]
    threads = ["--threads", str(args.threads)] if args.threads else []
    ours = ServerProcess(target, "--parallel", "1", "--ctx", "4096", *threads, *ours_flags,
                         log=logs / f"ours-{tag}-{mode}.log", timeout_s=600)
    try:
        theirs = LlamaServer(binary, target, theirs_flags, args.threads, logs / f"llama-server-{tag}-{mode}.log")
        try:
            rates = {"ours": [], "llama_server": []}
            for _ in range(args.rounds):
                for name, srv in (("ours", ours), ("llama_server", theirs)):
                    rates[name].append(asyncio.run(decode_rate(srv.url, args.tokens)))
            result = {name: {"decode_tok_s": round(statistics.median(r), 3)} for name, r in rates.items()}
            if mode != "plain":
                result["ours"]["acceptance"] = our_acceptance(ours.url)
                result["llama_server"]["acceptance"] = theirs.acceptance()
        finally:
            theirs.stop()
    finally:
        ours.stop()
    return result


def pair_figures(args, target: Path, draft: Path, binary: Path, logs: Path, tag: str, lookup: bool) -> dict:
    """Plain, draft-model and (when asked) lookup decoding of one target, with the ratios."""
    modes = ["plain", "draft"] + (["lookup"] if lookup else [])
    results = {mode: measure(mode, args, target, draft, binary, logs, tag) for mode in modes}
    plain = results["plain"]
    for mode in modes[1:]:
        r = results[mode]
        r["ratios"] = {
            "ours_over_our_plain": round(r["ours"]["decode_tok_s"] / plain["ours"]["decode_tok_s"], 3),
            "llama_server_over_its_plain": round(r["llama_server"]["decode_tok_s"] / plain["llama_server"]["decode_tok_s"], 3),
            "ours_over_llama_server": round(r["ours"]["decode_tok_s"] / r["llama_server"]["decode_tok_s"], 3),
        }
    return {"target": target.name, "draft": draft.name, **results}


def goals(pairs: dict) -> dict:
    met = {}
    for tag, pair in pairs.items():
        for mode in ("draft", "lookup"):
            if mode not in pair:
                continue
            r = pair[mode]["ratios"]
            met[f"{tag} {mode}: ours >= 1.0x llama-server's"] = r["ours_over_llama_server"] >= 1.0
            if r["llama_server_over_its_plain"] > 1.0:
                met[f"{tag} {mode}: faster than our plain (llama-server's beats its plain)"] = r["ours_over_our_plain"] > 1.0
    return met


def supports_lookup(binary: Path) -> bool:
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout
    return "ngram-simple" in help_text


def main() -> None:

    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--draft-max", type=int, default=3, help="draft length, both servers (llama-server's default 3)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="pin both servers' threads (default: each its own)")
    parser.add_argument("--pairs", default="agreeing,own_quant", help="which pairs: agreeing, agreeing_7b, own_quant")
    args = parser.parse_args()
    binary = llama_server_binary()
    logs = Path(tempfile.mkdtemp(prefix="bench-speculative-"))
    load_before = os.getloadavg()
    build = {"agreeing": lambda: pair_figures(args, *agreeing_pair(cache_root() / "bench"), binary, logs, "agreeing",
                                              lookup=supports_lookup(binary)),
             "agreeing_7b": lambda: pair_figures(args, *agreeing_pair(cache_root() / "bench", size="7b"), binary, logs,
                                                 "agreeing_7b", lookup=supports_lookup(binary)),
             "own_quant": lambda: pair_figures(args, *real_size_pair(), binary, logs, "own_quant", lookup=False)}
    unknown = set(args.pairs.split(",")) - set(build)
    if unknown:
        parser.error(f"unknown pairs {sorted(unknown)}: {', '.join(build)}")
    pairs = {tag: build[tag]() for tag in args.pairs.split(",")}
    print(json.dumps({
        "bench": "serve_speculative", "draft_max": args.draft_max, "tokens": args.tokens, "rounds": args.rounds,
        "threads": args.threads or "each server's default",
        "baseline": f"llama.cpp llama-server of the same version ({binary})",
        "pairs": pairs, "goals_met": goals(pairs),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)], **machine(),
    }))


if __name__ == "__main__":
    main()
