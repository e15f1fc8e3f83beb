"""Training throughput: our SFT recipe (`r1-distill train`) against plain `SFTTrainer` defaults.

Same model, same traces, same batch size and steps, one process each (so peak memory is each run's own):
* ours: `r1-distill train --group-by-length`: the R1 training template with assistant-only loss, over-length
  traces dropped, batches grouped by length on CPU (padding-free on a GPU with FlashAttention), Liger on GPU;
* plain: `SFTTrainer` with its defaults on the same conversations, padded batches in random order. TRL's
  defaults turn on bf16 and gradient checkpointing even on a CPU, which is most of the gap there, so
* plain_fp32: the same with the precision and checkpointing `r1-distill train` picks on this device, which
  isolates what the recipe itself (template, length-grouped batches) is worth.
Trained tokens/s counts real tokens only (padding excluded). Prints one JSON line.

On CPU the model is a small random-weight Llama with a SentencePiece vocabulary trained on the traces
(GSM8K reference solutions from ../shared/data, whose lengths are skewed like real traces). With
`--shape qwen2.5-1.5b` on a GPU, it is a random-weight model of Qwen2.5-1.5B's shape (152k vocabulary),
where the comparison is the output layer: with and without Liger's fused linear cross-entropy.

    python bench/train.py [--traces 256] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def _prepare(root: Path, n: int) -> tuple[Path, Path]:
    from r1_distill.demo.models import DemoModelSpec, build_model, build_tokenizer
    from r1_distill.traces import TraceRecord, write_traces

    data = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gsm8k_train.jsonl"
    if not data.is_file():
        sys.exit(f"bench/train.py needs {data} (the shared/ folder beside the checkout)")
    rows = [json.loads(line) for line in data.read_text().splitlines()[:n]]
    records = [TraceRecord.from_completion(
        problem_id=r["id"], problem=r["problem"], prompt=r["problem"], reference_answer=r["answer"], sample_index=0,
        teacher="reference", backend="reference", kept=True, finish_reason="stop",
        completion=f"{r['solution'].split('####')[0].strip()}\n</think>\n\nThe answer is \\boxed{{{r['answer']}}}.")
        for r in rows]
    write_traces(root / "kept.jsonl", records)
    tokenizer = build_tokenizer([t for r in rows for t in (r["problem"], r["solution"])], root / "tokenizer", vocab_size=2000)
    model = build_model(DemoModelSpec(hidden_size=256, num_hidden_layers=4, max_position_embeddings=2048), tokenizer,
                        root / "model")
    return model, root / "kept.jsonl"


class _TokenCounter:
    """Counts real (unpadded) tokens the trainer feeds the model."""

    def __init__(self):
        self.tokens = 0

    def wrap(self, collator):
        def collate(features):
            batch = collator(features)
            mask = batch.get("attention_mask")
            self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
            return batch
        return collate


def _run_variant(variant: str, model: str, traces: str, batch: int, steps: int, out: str) -> dict:
    import torch

    counter = _TokenCounter()
    from trl import SFTTrainer

    original_init = SFTTrainer.__init__

    def patched(self, *args, **kwargs):  # count tokens at the collator, for both variants alike
        original_init(self, *args, **kwargs)
        self.data_collator = counter.wrap(self.data_collator)

    SFTTrainer.__init__ = patched
    start = time.perf_counter()
    if variant == "ours":
        from r1_distill.distill.train import TrainConfig, train

        metrics = train(TrainConfig(student=model, traces=traces, out=out, epochs=steps * batch / _count(traces),
                                    max_length=2048, effective_batch=batch, per_device_batch=batch, learning_rate=1e-3, group_by_length=True,
                                    save_steps=10**6))
        runtime = metrics["train_runtime_s"]
    else:  # plain, plain_fp32
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig

        from r1_distill.distill.train import to_messages
        from r1_distill.traces import read_traces

        tokenizer = AutoTokenizer.from_pretrained(model)
        from r1_distill.registry import read_template

        tokenizer.chat_template = read_template("r1-distill-train")
        dataset = Dataset.from_list([{"messages": to_messages(r)} for r in read_traces(traces)])
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model), processing_class=tokenizer, train_dataset=dataset,
                             args=SFTConfig(output_dir=out, per_device_train_batch_size=batch, max_steps=steps,
                                            learning_rate=1e-3, report_to="none", save_strategy="no",
                                            use_cpu=not torch.cuda.is_available(), max_length=2048,
                                            **({"bf16": torch.cuda.is_available(),
                                                "gradient_checkpointing": torch.cuda.is_available()}
                                               if variant == "plain_fp32" else {})))
        runtime = trainer.train().metrics["train_runtime"]
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"tokens": counter.tokens, "train_runtime_s": round(runtime, 2), "tokens_per_s": round(counter.tokens / runtime, 1),
            "peak_memory_mb": round(peak / 2**20, 1), "wall_s": round(time.perf_counter() - start, 1)}


def _count(traces: str) -> int:
    return sum(1 for _ in open(traces))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--variant", choices=["ours", "plain", "plain_fp32"])  # internal: one variant in this process
    parser.add_argument("--model")
    parser.add_argument("--traces-file")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(_run_variant(args.variant, args.model, args.traces_file, args.batch, args.steps, args.out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, traces = _prepare(root, args.traces)
        results = {}
        for variant in ("plain", "plain_fp32", "ours"):
            run = subprocess.run([sys.executable, __file__, "--variant", variant, "--model", str(model), "--traces-file",
                                  str(traces), "--out", str(root / variant), "--batch", str(args.batch), "--steps",
                                  str(args.steps)], capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"{variant} run failed:\n{run.stderr[-3000:]}")
            results[variant] = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps({
        "bench": "train", "baseline": "plain SFTTrainer defaults, padded batches", **machine(),
        "traces": args.traces, "batch": args.batch, "steps": args.steps, **{k: v for k, v in results.items()},
        "tokens_per_s_ratio": round(results["ours"]["tokens_per_s"] / results["plain"]["tokens_per_s"], 3),
        "peak_memory_ratio": round(results["ours"]["peak_memory_mb"] / results["plain"]["peak_memory_mb"], 3),
        "tokens_per_s_ratio_vs_plain_fp32": round(results["ours"]["tokens_per_s"] / results["plain_fp32"]["tokens_per_s"], 3),
        "peak_memory_ratio_vs_plain_fp32": round(results["ours"]["peak_memory_mb"] / results["plain_fp32"]["peak_memory_mb"], 3),
    }))


if __name__ == "__main__":
    main()
