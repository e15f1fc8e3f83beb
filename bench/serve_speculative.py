"""Speculative decoding: `r1-distill serve --draft / --lookup` against llama-server's `-md` / `--lookup`-style
drafting, the same pair and draft length, in the same run, on this machine.

    python bench/serve_speculative.py [--tokens 128] [--draft-max 4] [--rounds 3] [--threads N]

Pair: a random-weight model of Qwen2.5-1.5B's shape as Q8_0 (the target) drafted by its own Q4_K_M (the
"a model's Q4 for its own Q8" case of the issue; both built once and cached). Random weights give a flat
next-token distribution, so both servers draft with ``--draft-p-min 0`` (the default 0.75 would never
draft); how often the Q4's greedy token is the Q8's is what it is, and is printed as the acceptance rate.
Prompt lookup drafts from the sequence itself; a random model's greedy output falls into loops, which
lookup catches, as it catches a reasoning model repeating itself.

Figures, for each server and mode (plain, draft model, lookup): single-stream greedy decode tok/s (median
over rounds) and the draft acceptance rate; ratios: each server's speculative over its own plain decode, and
ours over llama-server's for the same mode. One JSON line.
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
        for path, quant in ((target, "Q8_0"), (draft, "Q4_K_M")):
            if not path.is_file():
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


def measure(mode: str, args, target: Path, draft: Path, binary: Path, logs: Path) -> dict:
    """Both servers in one mode, measured in alternation round after round; medians."""
    ours_flags = {"plain": [], "draft": ["--draft", str(draft), "--draft-max", str(args.draft_max), "--draft-p-min", "0"],
                  "lookup": ["--lookup", str(args.draft_max)]}[mode]
    theirs_flags = {"plain": [], "draft": ["-md", str(draft), "--draft-max", str(args.draft_max), "--draft-min", "0",
                                           "--draft-p-min", "0"],
                    "lookup": ["--spec-type", "ngram-simple", "--draft-max", str(args.draft_max)]}[mode]
    threads = ["--threads", str(args.threads)] if args.threads else []
    ours = ServerProcess(target, "--parallel", "1", "--ctx", "4096", *threads, *ours_flags, log=logs / f"ours-{mode}.log",
                         timeout_s=600)
    try:
        theirs = LlamaServer(binary, target, theirs_flags, args.threads, logs / f"llama-server-{mode}.log")
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


def supports_lookup(binary: Path) -> bool:
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout
    return "ngram-simple" in help_text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--draft-max", type=int, default=4, help="draft length, both servers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="pin both servers' threads (default: each its own)")
    args = parser.parse_args()
    binary = llama_server_binary()
    target, draft = real_size_pair()
    logs = Path(tempfile.mkdtemp(prefix="bench-speculative-"))
    load_before = os.getloadavg()
    modes = ["plain", "draft"] + (["lookup"] if supports_lookup(binary) else [])
    results = {mode: measure(mode, args, target, draft, binary, logs) for mode in modes}
    plain = results["plain"]
    ratios = {}
    for mode in modes[1:]:
        r = results[mode]
        ratios[mode] = {
            "ours_over_our_plain": round(r["ours"]["decode_tok_s"] / plain["ours"]["decode_tok_s"], 3),
            "llama_server_over_its_plain": round(r["llama_server"]["decode_tok_s"] / plain["llama_server"]["decode_tok_s"], 3),
            "ours_over_llama_server": round(r["ours"]["decode_tok_s"] / r["llama_server"]["decode_tok_s"], 3),
        }
    goals = {}
    for mode, r in ratios.items():
        goals[f"{mode}: ours >= 1.0x llama-server's"] = r["ours_over_llama_server"] >= 1.0
        if r["llama_server_over_its_plain"] > 1.0:
            goals[f"{mode}: faster than our plain decode (llama-server's is faster than its own)"] = r["ours_over_our_plain"] > 1.0
    print(json.dumps({
        "bench": "serve_speculative", "target": target.name, "draft": draft.name, "draft_max": args.draft_max,
        "tokens": args.tokens, "rounds": args.rounds, "baseline": f"llama.cpp llama-server of the same version ({binary})",
        "modes_not_in_baseline": [m for m in ("lookup",) if m not in modes],
        "results": results, "ratios": ratios, "goals_met": goals,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)], **machine(),
    }))


if __name__ == "__main__":
    main()
