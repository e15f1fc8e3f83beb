"""A target and a draft that agree, at real sizes, without training: the draft is a random-weight model, the
target a model of a bigger shape that computes exactly what the draft computes.

Random weights accept nothing (two random models' greedy tokens never agree; a model's Q4 agrees with its
own Q8 about one token in twelve), so a speculative-decoding bench needs a pair that agrees the way a
distilled 1.5B student agrees with its 7B sibling. Here the target holds the draft's weights in a corner of
its own bigger matrices, with zeros elsewhere: its hidden state is the draft's padded with zeros (RMSNorm's
weights scaled by sqrt(draft hidden / target hidden) to undo the longer mean), its extra attention heads and
MLP rows write nothing (zero output projections), its extra layers pass the residual through unchanged. It
costs what a model of its shape costs to run (every weight is read) and its greedy tokens are the draft's:
the best case of acceptance. The two quantize alike (a padded row's blocks are the draft row's blocks and
zero blocks), so the pair keeps agreeing as GGUF.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path

from r1_distill.tiny import TinySpec, build_tiny_model

# Qwen2.5-1.5B's shape (the target) and a draft of a third of its cost with the same head size (128)
TARGET_1_5B = TinySpec(architecture="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                       num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, dtype="bfloat16")
DRAFT_0_5B = TinySpec(architecture="qwen2", hidden_size=768, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=6, num_key_value_heads=1, max_position_embeddings=32768, dtype="bfloat16")
# Qwen2.5-7B's shape, and Qwen2.5-1.5B's as its draft (the same head size, 128): the 7B student drafted by
# the 1.5B one
TARGET_7B = TinySpec(architecture="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, dtype="bfloat16")
PAIRS = {"1.5b": (TARGET_1_5B, DRAFT_0_5B, "agreeing-1.5b-shape", "agreeing-0.5b-shape-draft"),
         "7b": (TARGET_7B, TARGET_1_5B, "agreeing-7b-shape", "agreeing-1.5b-shape-draft")}


def padded_target(draft_dir: Path, target: TinySpec, out: Path) -> Path:
    """An HF folder of `target`'s shape whose logits are the draft model's (see the module's docstring), written one
    layer per safetensors shard: a 7B-shape target (15 GB of bf16) never sits in memory whole."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    config = json.loads((draft_dir / "config.json").read_text())
    hd, ht = config["hidden_size"], target.hidden_size
    head = hd // config["num_attention_heads"]
    assert head == ht // target.num_attention_heads, "the draft and the target need the same head size"
    group_d = config["num_attention_heads"] // config["num_key_value_heads"]
    group_t = target.num_attention_heads // target.num_key_value_heads
    assert group_t >= group_d and target.num_key_value_heads >= config["num_key_value_heads"]
    assert target.num_hidden_layers >= config["num_hidden_layers"]
    # the draft's query head h reads kv head h // group_d: put it among the target's heads that read that kv head
    q_rows = torch.cat([torch.arange(head) + ((h // group_d) * group_t + h % group_d) * head
                        for h in range(config["num_attention_heads"])])
    norm_scale = math.sqrt(hd / ht)

    def padded(name: str, w):
        def zeros(*shape):
            return torch.zeros(*shape, dtype=w.dtype)

        if name.endswith("norm.weight"):
            t = zeros(ht)
            t[:hd] = w * norm_scale
        elif name == "model.embed_tokens.weight" or name == "lm_head.weight":
            t = zeros(w.shape[0], ht)
            t[:, :hd] = w
        elif ".q_proj." in name:
            t = zeros(target.num_attention_heads * head, *([ht] if w.dim() == 2 else []))
            t[q_rows] = w if w.dim() == 1 else torch.nn.functional.pad(w, (0, ht - hd))
        elif ".k_proj." in name or ".v_proj." in name:
            t = zeros(target.num_key_value_heads * head, *([ht] if w.dim() == 2 else []))
            t[: w.shape[0]] = w if w.dim() == 1 else torch.nn.functional.pad(w, (0, ht - hd))
        elif ".o_proj." in name:
            t = zeros(ht, target.num_attention_heads * head)
            t[:hd, q_rows] = w
        elif ".gate_proj." in name or ".up_proj." in name:
            t = zeros(target.intermediate_size, ht)
            t[: w.shape[0], :hd] = w
        elif ".down_proj." in name:
            t = zeros(ht, target.intermediate_size)
            t[:hd, : w.shape[1]] = w
        else:
            raise ValueError(f"unexpected tensor {name}")
        return t.contiguous()

    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:  # the draft's shards (transformers shards a 1.5B-shape draft)
        opened = [stack.enter_context(safe_open(str(path), framework="pt"))
                  for path in sorted(draft_dir.glob("*.safetensors"))]
        where = {name: handle for handle in opened for name in handle.keys()}
        groups: dict[str, list[str]] = {}
        for name in where:
            key = ".".join(name.split(".")[:3]) if name.startswith("model.layers.") else "other"
            groups.setdefault(key, []).append(name)
        shards = [*groups.values(), *([None] * (target.num_hidden_layers - config["num_hidden_layers"]))]
        weight_map = {}
        for i, group in enumerate(shards):
            if group is None:  # a pass-through layer: layer 0's shapes, its output projections zero
                layer = config["num_hidden_layers"] + i - len(groups)
                tensors = {}
                for name in groups["model.layers.0"]:
                    t = padded(name, where[name].get_tensor(name))
                    tensors[name.replace("model.layers.0.", f"model.layers.{layer}.")] = (
                        torch.zeros_like(t) if any(k in name for k in (".o_proj.", ".down_proj.")) else t)
            else:
                tensors = {name: padded(name, where[name].get_tensor(name)) for name in group}
            shard = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(tensors, str(out / shard), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, shard))
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    config.update(hidden_size=ht, intermediate_size=target.intermediate_size, num_hidden_layers=target.num_hidden_layers,
                  num_attention_heads=target.num_attention_heads, num_key_value_heads=target.num_key_value_heads)
    config.pop("layer_types", None)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for f in draft_dir.iterdir():
        if f.is_file() and f.name != "config.json" and not f.name.startswith("model.safetensors") and f.suffix != ".safetensors":
            shutil.copy2(f, out / f.name)
    return out


def agreeing_pair(folder: Path, quant: str = "Q4_K_M", size: str = "1.5b") -> tuple[Path, Path]:
    """(target, draft) GGUFs that agree, of PAIRS[size]'s shapes (1.5b: TARGET_1_5B and DRAFT_0_5B; 7b: TARGET_7B
    drafted by TARGET_1_5B's shape, about 15 GB of bf16 on disk while it is built); built once and cached."""
    import os
    import tempfile

    from r1_distill.export.converter import run_converter
    from r1_distill.export.quantize import quantize

    target_spec, draft_spec, target_name, draft_name = PAIRS[size]
    target, draft = folder / f"{target_name}-{quant}.gguf", folder / f"{draft_name}-{quant}.gguf"
    if target.is_file() and draft.is_file():
        return target, draft
    folder.mkdir(parents=True, exist_ok=True)
    draft_dir = build_tiny_model(draft_spec)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp = Path(tmp)
        target_dir = padded_target(draft_dir, target_spec, tmp / "target-hf")
        for hf, path in ((draft_dir, draft), (target_dir, target)):
            run_converter(hf, tmp / "f16.gguf", "f16")
            quantize(tmp / "f16.gguf", tmp / "q.gguf", quant)
            os.replace(tmp / "q.gguf", path)
            (tmp / "f16.gguf").unlink()
    shutil.rmtree(draft_dir, ignore_errors=True)
    return target, draft
