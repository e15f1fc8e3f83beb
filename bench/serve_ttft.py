"""Time to first token on our server alone, per round: bench/serve.py's rounds (`single_ttft_s` is a short
prompt served before, after a burst of 8 streams pushed it out of its slot), then new short prompts after
short ones and after a 2k-token one; the prompt cache's lines of /metrics at the end.

    python bench/serve_ttft.py FILE.gguf [server flags, e.g. --threads 1]
"""

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx  # noqa: E402
from serve import long_prefix, measure_round, stream_once  # noqa: E402

from r1_distill.server_process import ServerProcess  # noqa: E402


async def new_prompts(url: str) -> tuple[dict, list[str]]:
    out = {"after_short": [], "after_long": []}
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for i in range(4):
            await stream_once(http, f"Warm {i}: tell me a story about {i}", 2, 0)
            out["after_short"].append((await stream_once(http, f"Fresh short {i}: what is {i} plus {i}?", 2, 0))["ttft_s"])
            await stream_once(http, long_prefix() + f" Question: what is item{20 + i}? Variant {i}", 2, 0)
            out["after_long"].append((await stream_once(http, f"New short {i}: what is {i} times {i}?", 2, 0))["ttft_s"])
        metrics = (await http.get("/metrics")).text
    cache = [line for line in metrics.splitlines() if "prompt_cache" in line and not line.startswith("#")]
    return {k: [round(x, 3) for x in v] for k, v in out.items()}, cache


def main() -> None:
    gguf, extra = sys.argv[1], sys.argv[2:]
    srv = ServerProcess(Path(gguf), "--parallel", "8", "--ctx", "4096", *extra, log=Path(tempfile.mkdtemp(prefix="serve-ttft-")) / "ours.log",
                        timeout_s=600)
    try:
        rounds = [asyncio.run(measure_round(srv.url, 16, r)) for r in range(3)]
        print("single_ttft_s per round:", [round(r["single_ttft_s"], 3) for r in rounds],
              "repeated_2k_prefix_ttft_s:", [round(r["repeated_2k_prefix_ttft_s"], 3) for r in rounds],
              "mean_ttft_s 4/8:", [(round(r["mean_ttft_s_4"], 3), round(r["mean_ttft_s_8"], 3)) for r in rounds])
        print("new short prompts:", *asyncio.run(new_prompts(srv.url)))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
