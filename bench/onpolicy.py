"""On-policy distillation's throughput on this machine, each path of `train --method on-policy` against SFT.

Same student, same prompts, one run each (in this process, one after the other):
* gkd: a local HF teacher with the student's tokenizer (TRL's GKDTrainer): the student samples, the teacher
  scores every token with its full distribution;
* distillation: the same teacher on TRL's DistillationTrainer (what `train` picks on a GPU at lambda 1; its loss
  chunk by chunk from both models' hidden states; here without vLLM);
* server: the same teacher exported to GGUF (Q8_0) and served by `r1-distill serve` on 127.0.0.1 (TRL's
  ServerDistillationTrainer through our scorer: one request per completion token, the token forced);
* gold (with --gold): a local teacher with another tokenizer (TRL's GOLDTrainer, cross-tokenizer ULD loss). Off by
  default: TRL 1.16's ULD alignment takes ByteLevel BPE tokenizers only (Llama 3, Qwen), and the demo's
  SentencePiece ones are not, so the line says so instead;
* sft: `r1-distill train` on the same traces (the teacher's text, nothing sampled).

Per path: teacher tokens/s (the tokens the teacher processed: every scored sequence, prompt included, over the
run's wall time), student tokens/s (the tokens the student sampled), and the cost per trained token against SFT's
(seconds per token the student trained on, on-policy's being the scored sequences). The models are the demo's
tiny Llamas (a 640-piece vocabulary trained on the demo's task; teacher 4 x 192, student 3 x 128) with random
weights: throughput, not quality. Prints one JSON line.

    python bench/onpolicy.py [--prompts 16] [--max-new-tokens 48] [--skip server] [--gold]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def _prepare(root: Path, prompts: int) -> dict:
    from r1_distill.demo.models import DemoModelSpec, build_model, build_tokenizer
    from r1_distill.demo.task import cold_start_traces, make_splits
    from r1_distill.traces import TraceRecord, write_traces

    rows = cold_start_traces(make_splits({"train": max(prompts, 200), "prompt": 0, "heldout": 0})["train"], slip_rate=0.0)
    records = [TraceRecord.from_completion(
        problem_id=r["problem"].id, problem=r["problem"].text, prompt=r["problem"].text, sample_index=0,
        reference_answer=str(r["problem"].answer), teacher="script", backend="script", kept=True, finish_reason="stop",
        completion=f"{r['reasoning']}\n</think>\n\n{r['answer']}") for r in rows[:prompts]]
    write_traces(root / "kept.jsonl", records)
    corpus = [x for r in rows for x in (r["problem"].text, r["reasoning"], r["answer"])]
    tok = build_tokenizer(corpus, root / "tok")
    other = build_tokenizer(corpus, root / "tok-other", vocab_size=500)
    return {"traces": root / "kept.jsonl",
            "student": build_model(DemoModelSpec(hidden_size=128, num_hidden_layers=3, seed=1), tok, root / "student"),
            "teacher": build_model(DemoModelSpec(hidden_size=192, num_hidden_layers=4), tok, root / "teacher"),
            "teacher_other": build_model(DemoModelSpec(hidden_size=192, num_hidden_layers=4), other, root / "teacher-other")}


def _onpolicy(models: dict, teacher: str, out: Path, args, trainer: str = "auto") -> dict:
    from r1_distill.distill.onpolicy import OnPolicyConfig, train_on_policy

    started = time.perf_counter()
    m = train_on_policy(OnPolicyConfig(student=str(models["student"]), teacher=teacher, traces=str(models["traces"]),
                                       out=str(out), max_new_tokens=args.max_new_tokens, learning_rate=1e-4,
                                       effective_batch=args.batch, per_device_batch=args.batch, max_length=512,
                                       save_steps=10**6, print_logs=False, trainer=trainer))
    wall = time.perf_counter() - started
    c = m["compute"]
    runtime = m["train_runtime_s"]
    trained = c["teacher_tokens"]  # the student trains on the very sequences the teacher scored
    return {"trainer": m["trainer"], "steps": m["steps"], "train_runtime_s": round(runtime, 2), "wall_s": round(wall, 1),
            "teacher_tokens": c["teacher_tokens"], "teacher_sequences": c["teacher_forward_passes"],
            "student_sampled_tokens": c["student_sampled_tokens"],
            "teacher_tokens_per_s": round(c["teacher_tokens"] / runtime, 1),
            "student_tokens_per_s": round(c["student_sampled_tokens"] / runtime, 1),
            "s_per_trained_token": runtime / max(1, trained)}


def _server(models: dict, root: Path, args) -> dict:
    from r1_distill.export.pipeline import ExportConfig, export_gguf
    from r1_distill.server_process import ServerProcess

    export_gguf(ExportConfig(model=str(models["teacher"]), out=str(root / "gguf"), quants=["Q8_0"], name="teacher"))
    with ServerProcess(root / "gguf" / "teacher-Q8_0.gguf", "--parallel", "4", "--ctx", "1024",
                       log=root / "serve.log") as server:
        return _onpolicy(models, server.url + "/v1", root / "server", args)


def _sft(models: dict, out: Path, args) -> dict:
    from r1_distill.distill.train import TrainConfig, train

    m = train(TrainConfig(student=str(models["student"]), traces=str(models["traces"]), out=str(out), epochs=1,
                          learning_rate=1e-4, max_length=512, effective_batch=args.batch, per_device_batch=args.batch,
                          save_steps=10**6, print_logs=False))
    tokens = round(m["trained_on"] * m["mean_tokens"])
    runtime = m["train_runtime_s"]
    return {"steps": m["steps"], "train_runtime_s": round(runtime, 2), "trained_tokens": tokens,
            "trained_tokens_per_s": round(tokens / runtime, 1), "s_per_trained_token": runtime / max(1, tokens)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--skip", default="", help="comma-separated paths to leave out: gkd, distillation, server")
    parser.add_argument("--gold", action="store_true", help="try the cross-tokenizer path (ByteLevel tokenizers only)")
    args = parser.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    skip = set(filter(None, args.skip.split(",")))
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = _prepare(root, args.prompts)
        results["sft"] = _sft(models, root / "sft", args)
        if "gkd" not in skip:
            results["gkd"] = _onpolicy(models, str(models["teacher"]), root / "gkd", args, trainer="gkd")
        if "distillation" not in skip:
            results["distillation"] = _onpolicy(models, str(models["teacher"]), root / "distillation", args,
                                                trainer="distillation")
        if "server" not in skip:
            results["server"] = _server(models, root, args)
        results["gold"] = (_onpolicy(models, str(models["teacher_other"]), root / "gold", args) if args.gold else
                           {"skipped": "TRL's cross-tokenizer ULD takes ByteLevel BPE tokenizers only; the demo's "
                                       "SentencePiece ones are not (tests/test_onpolicy_cross_tokenizer.py runs it on "
                                       "the hub's Llama 3.3 and Qwen2.5 tokenizers)"})
    sft_cost = results["sft"].pop("s_per_trained_token")
    for path in ("gkd", "distillation", "server", "gold"):
        if path in results and "skipped" not in results[path]:
            results[path]["cost_per_trained_token_vs_sft"] = round(results[path].pop("s_per_trained_token") / sft_cost, 2)
    print(json.dumps({"bench": "onpolicy", "baseline": "r1-distill train (SFT) on the same traces", **machine(),
                      "prompts": args.prompts, "batch": args.batch, "max_new_tokens": args.max_new_tokens, **results}))


if __name__ == "__main__":
    main()
