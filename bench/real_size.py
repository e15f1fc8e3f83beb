"""Real sizes on this machine: a random-weight model of Qwen2.5-Math-1.5B's exact config, with the recipe's
long-context change (rope_theta 300k, 32k positions), and Qwen2.5-Math's tokenizer as the hub ships it,
through `r1-distill train` (a few steps on 4,096-token traces; the R1 format prepared on the way) and
through `r1-distill export --gguf` with verification. Prints one JSON line: seconds per step and peak
memory of training, export's wall time and peak memory as a multiple of the model's bf16 size (goal: at
most 1.5x; the reference logits must not need a float32 copy of the whole model).

Each stage runs in its own process; peak memory is the largest resident set of that process and its
children together, sampled every 0.2 s.

On a GPU the defaults are the recipe's (full fine-tuning, bf16, gradient checkpointing). On a CPU the
recipe's full fine-tuning does not fit 24 GB (fp32 AdamW needs 16 bytes a parameter): the bench runs
LoRA in bf16 with gradient checkpointing there, and says so; `--method full` asks for the recipe anyway.

    python bench/real_size.py [--steps 2] [--tokens 4096] [--method lora|full] [--quant Q4_K_M]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

# Qwen/Qwen2.5-Math-1.5B's config.json
QWEN25_MATH_15B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, max_position_embeddings=4096, rope_theta=10000.0, vocab_size=151936,
                       tie_word_embeddings=True, rms_norm_eps=1e-6, sliding_window=None, use_sliding_window=False)


def build_base(root: Path) -> Path:
    """The 1.5B shape in bf16 with random weights, and the hub tokenizer (no R1 tokens)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from r1_distill.registry import load_registry
    from r1_distill.tiny import load_tiny_tokenizer

    out = root / "qwen2.5-math-1.5b-random"
    if (out / "model.safetensors").is_file():  # a --workdir kept from an earlier run
        return out
    tokenizer = load_tiny_tokenizer("qwen2.5-math")
    long_context = load_registry().students["r1-distill-qwen-1.5b"].long_context
    config = Qwen2Config(**{**QWEN25_MATH_15B, "max_position_embeddings": long_context.max_position_embeddings},
                         bos_token_id=151643, eos_token_id=151643, dtype="bfloat16")
    config.rope_parameters = {"rope_type": "default", "rope_theta": long_context.rope_theta}
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=151643, eos_token_id=151643)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def long_traces(root: Path, tokens: int, count: int, tokenizer) -> Path:
    """Traces of `tokens` tokens each (the base's tokenizer counts): GSM8K reference solutions repeated into
    long reasoning."""
    from r1_distill.traces import TraceRecord, write_traces

    data = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gsm8k_train.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()[:count]]
    records = []
    for r in rows:
        step = r["solution"].split("####")[0].strip()
        per_attempt = len(tokenizer.encode(f"Attempt 10. {step}\n\n", add_special_tokens=False))
        attempts = max(1, (tokens - 120) // per_attempt)
        reasoning = "\n\n".join(f"Attempt {i + 1}. {step}" for i in range(attempts))
        records.append(TraceRecord.from_completion(
            problem_id=r["id"], problem=r["problem"], reference_answer=r["answer"], sample_index=0, teacher="reference",
            backend="reference", kept=True, finish_reason="stop",
            completion=f"{reasoning}\n</think>\n\nThe answer is \\boxed{{{r['answer']}}}."))
    write_traces(root / "kept.jsonl", records)
    return root / "kept.jsonl"


def run_measured(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds and peak resident GiB of a command and its children."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, output = 0, []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = parent.memory_info().rss + sum(c.memory_info().rss for c in parent.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.2)
    reader.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:5])} ... failed:\n{''.join(output)[-3000:]}")
    return time.perf_counter() - start, peak / 2**30, "".join(output)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--method", choices=["lora", "full"], default=None)
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--f16-tolerance", type=float, default=0.02)
    parser.add_argument("--workdir", default=None, help="keep the model and outputs here (default: a temporary folder)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    method = args.method or ("full" if cuda else "lora")

    with tempfile.TemporaryDirectory(prefix="r1-real-size-") as tmp:
        root = Path(args.workdir) if args.workdir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        base = build_base(root)
        bf16_bytes = sum(f.stat().st_size for f in base.glob("*.safetensors"))
        from r1_distill.tiny import load_tiny_tokenizer

        traces = long_traces(root, args.tokens, args.steps, load_tiny_tokenizer("qwen2.5-math"))
        cli = [sys.executable, "-m", "r1_distill"]
        train_cmd = cli + ["train", "--student", str(base), "--traces", str(traces), "--out", str(root / "student"),
                           "--method", method, "--max-length", str(args.tokens + 512), "--epochs", "1",
                           "--per-device-batch", "1", "--effective-batch", "1", "--save-steps", "1000000"]
        if not cuda:
            train_cmd += ["--precision", "bf16", "--gradient-checkpointing"]
        train_s, train_peak, _ = run_measured(train_cmd)
        manifest = json.loads((root / "student" / "manifest.json").read_text())["metrics"]
        # random weights give logits near 1, where the default F16 tolerance (1e-3 x max(1, scale)) is below what
        # llama.cpp's f16 matmuls (activations rounded to f16) keep over 28 layers; trained models have scales of 10+
        export_s, export_peak, _ = run_measured(cli + ["export", "--gguf", "--model", str(root / "student"), "--out",
                                                       str(root / "gguf"), "--quant", args.quant,
                                                       "--f16-tolerance", str(args.f16_tolerance)])
        report = json.loads((root / "gguf" / "export_report.json").read_text())

    print(json.dumps({
        "bench": "real_size", "shape": "Qwen2.5-Math-1.5B (random weights, long-context rope 300k)",
        "device": "cuda" if cuda else "cpu", "method": method, "precision": manifest.get("precision"),
        "gradient_checkpointing": manifest.get("gradient_checkpointing"), "tokens_per_trace": round(manifest["mean_tokens"]),
        "steps": manifest["steps"], "train_runtime_s": round(manifest["train_runtime_s"], 1),
        "s_per_step": round(manifest["train_runtime_s"] / max(1, manifest["steps"]), 1),
        "train_process_s": round(train_s, 1), "train_peak_gib": round(train_peak, 2),
        "chat_format": {k: manifest["chat_format"][k] for k in ("token_map", "eos_token_id")},
        "model_bf16_gib": round(bf16_bytes / 2**30, 2), "export_s": round(export_s, 1),
        "export_peak_gib": round(export_peak, 2), "export_peak_x_bf16": round(export_peak * 2**30 / bf16_bytes, 2),
        "export_goal_x_bf16": 1.5, "export_files": {q: {k: f.get(k) for k in ("max_abs_logit_diff", "logit_scale", "top1_agreement", "mean_kl", "parity")}
                                                   for q, f in report["files"].items()},
        **machine()}))


if __name__ == "__main__":
    main()
