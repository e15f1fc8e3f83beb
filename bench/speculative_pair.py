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


def padded_target(draft_dir: Path, target: TinySpec, out: Path) -> Path:
    """An HF folder of `target`'s shape whose logits are the draft model's (see the module's docstring)."""
    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((draft_dir / "config.json").read_text())
    weights = load_file(str(draft_dir / "model.safetensors"))
    hd, ht = config["hidden_size"], target.hidden_size
    head = hd // config["num_attention_heads"]
    assert head == ht // target.num_attention_heads, "the draft and the target need the same head size"
    group_d = config["num_attention_heads"] // config["num_key_value_heads"]
    group_t = target.num_attention_heads // target.num_key_value_heads
    assert group_t >= group_d and target.num_key_value_heads >= config["num_key_value_heads"]
    # the draft's query head h reads kv head h // group_d: put it among the target's heads that read that kv head
    q_rows = torch.cat([torch.arange(head) + ((h // group_d) * group_t + h % group_d) * head
                        for h in range(config["num_attention_heads"])])
    norm_scale = math.sqrt(hd / ht)
    dtype = next(iter(weights.values())).dtype

    def zeros(*shape):
        return torch.zeros(*shape, dtype=dtype)

    out_weights = {}
    for name, w in weights.items():
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
        out_weights[name] = t.contiguous()
    for layer in range(config["num_hidden_layers"], target.num_hidden_layers):  # pass-through layers
        for name, w in list(out_weights.items()):
            if name.startswith("model.layers.0."):
                new = name.replace("model.layers.0.", f"model.layers.{layer}.")
                zero_out = any(k in name for k in (".o_proj.", ".down_proj."))
                out_weights[new] = zeros(*w.shape) if zero_out else w.clone()
    out.mkdir(parents=True, exist_ok=True)
    save_file(out_weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.update(hidden_size=ht, intermediate_size=target.intermediate_size, num_hidden_layers=target.num_hidden_layers,
                  num_attention_heads=target.num_attention_heads, num_key_value_heads=target.num_key_value_heads)
    config.pop("layer_types", None)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for f in draft_dir.iterdir():
        if f.name not in ("config.json", "model.safetensors") and f.is_file():
            shutil.copy2(f, out / f.name)
    return out


def agreeing_pair(folder: Path, quant: str = "Q4_K_M") -> tuple[Path, Path]:
    """(target, draft) GGUFs of TARGET_1_5B and DRAFT_0_5B's shapes that agree; built once and cached."""
    import os
    import tempfile

    from r1_distill.export.converter import run_converter
    from r1_distill.export.quantize import quantize

    target, draft = folder / f"agreeing-1.5b-shape-{quant}.gguf", folder / f"agreeing-0.5b-shape-draft-{quant}.gguf"
    if target.is_file() and draft.is_file():
        return target, draft
    folder.mkdir(parents=True, exist_ok=True)
    draft_dir = build_tiny_model(DRAFT_0_5B)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp = Path(tmp)
        target_dir = padded_target(draft_dir, TARGET_1_5B, tmp / "target-hf")
        for hf, path in ((draft_dir, draft), (target_dir, target)):
            run_converter(hf, tmp / "f16.gguf", "f16")
            quantize(tmp / "f16.gguf", tmp / "q.gguf", quant)
            os.replace(tmp / "q.gguf", path)
            (tmp / "f16.gguf").unlink()
    shutil.rmtree(draft_dir, ignore_errors=True)
    return target, draft
