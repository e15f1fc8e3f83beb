"""bench/speculative_pair.py: the padded target (a bigger shape holding the draft's weights in a corner, written one
layer per shard) computes the draft's logits, with more layers, heads and width than the draft, in HF."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from speculative_pair import padded_target  # noqa: E402

from r1_distill.tiny import TinySpec, build_tiny_model  # noqa: E402


def test_the_padded_target_computes_the_drafts_logits(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    draft = build_tiny_model(TinySpec(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=1, seed=3), tmp_path / "draft")
    target = padded_target(draft, TinySpec(hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                                           num_attention_heads=4, num_key_value_heads=2), tmp_path / "target")
    index = json.loads((target / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 4  # embeddings and norms, then a shard per layer
    ids = torch.tensor([[1, 17, 305, 4096, 88, 9, 1200, 31]])
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(draft).eval()(ids).logits
        b = AutoModelForCausalLM.from_pretrained(target).eval()(ids).logits
    assert AutoModelForCausalLM.from_pretrained(target).config.hidden_size == 128
    assert torch.allclose(a, b, atol=2e-3), (a - b).abs().max()  # rescaled RMSNorm: rounding only
    assert (a.argmax(-1) == b.argmax(-1)).all()
