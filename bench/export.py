"""Export overhead and fidelity: `r1-distill export --gguf` versus llama.cpp's converter and
quantizer run directly on the same model, in the same run. Prints one JSON line.

    python bench/export.py [--model DIR] [--quants F16,Q8_0,Q4_K_M]

Default model: the tiny Qwen2 student (real 152k vocabulary). Our export also verifies every file
against the HF model (tokenization, logits, KL, greedy continuation): that is where the overhead goes,
and the line reports it apart.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from r1_distill.export.converter import run_converter  # noqa: E402
from r1_distill.export.pipeline import ExportConfig, export_gguf  # noqa: E402
from r1_distill.export.quantize import quantize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--quants", default="F16,Q8_0,Q4_K_M")
    args = parser.parse_args()
    quants = args.quants.split(",")
    if args.model:
        model = Path(args.model)
    else:
        from r1_distill.tiny import TinySpec, build_tiny_model

        model = build_tiny_model(TinySpec(architecture="qwen2"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        run_converter(model, tmp / "direct-F16.gguf", "f16")
        for q in quants:
            if q != "F16":
                quantize(tmp / "direct-F16.gguf", tmp / f"direct-{q}.gguf", q)
        direct_s = time.perf_counter() - start

        start = time.perf_counter()
        report = export_gguf(ExportConfig(model=str(model), out=str(tmp / "ours"), quants=quants, name="bench"))
        ours_s = time.perf_counter() - start
    verify_s = sum(v for k, v in report["timings_s"].items() if k.startswith("verify"))
    print(json.dumps({
        "bench": "export",
        "model": str(model),
        "baseline": "llama.cpp convert_hf_to_gguf.py + llama_model_quantize, run directly",
        "direct_s": round(direct_s, 3),
        "ours_s": round(ours_s, 3),
        "overhead_ratio": round(ours_s / direct_s, 3),
        "ours_without_verification_s": round(ours_s - verify_s, 3),
        "overhead_ratio_without_verification": round((ours_s - verify_s) / direct_s, 3),
        "verification_s": round(verify_s, 3),
        "files": {q: {k: f[k] for k in ("bytes", "top1_agreement", "mean_kl", "greedy_match", "max_abs_logit_diff")}
                  for q, f in report["files"].items()},
        **machine(),
    }))


if __name__ == "__main__":
    main()
