"""The demo's small-vocabulary tokenizer and random-weight Llama models.

The 152k-token Qwen2 vocabulary would spend nearly all of a tiny model's compute in its output
layer, so the demo trains its own SentencePiece BPE vocabulary (512 pieces: 256 byte fallbacks, the
R1 special tokens, the words and digits of the task; digits split one per token) on the task's
training split. llama.cpp's converter takes it through its SentencePiece path, which needs no
pre-tokenizer hash, so the demo's models export, quantize and serve like any Llama student.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from r1_distill.files import write_text_atomic
from r1_distill.registry import read_template
from r1_distill.tiny import BOS, EOS, PAD

USER, ASSISTANT, THINK, END_THINK = "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"


@dataclass(frozen=True)
class DemoModelSpec:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int = 4
    intermediate_size: int | None = None  # default: 2 x hidden
    max_position_embeddings: int = 512
    seed: int = 0


def build_tokenizer(corpus: list[str], out: Path, vocab_size: int = 640) -> Path:
    """SentencePiece BPE model plus the HF tokenizer made from it, with the R1 special tokens and template."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, split_digits=False, byte_fallback=True, add_dummy_prefix=False,
        remove_extra_whitespaces=False, normalization_rule_name="identity", hard_vocab_limit=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, unk_piece="<unk>", bos_piece=BOS, eos_piece=EOS, pad_piece=PAD,
        user_defined_symbols=[USER, ASSISTANT, THINK, END_THINK, "\n"], minloglevel=2, num_threads=2, seed_sentencepiece_size=100000)
    staging = out / ".sp"
    staging.mkdir(exist_ok=True)
    (staging / "tokenizer.model").write_bytes(model.getvalue())
    (staging / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": "<unk>",
        "add_bos_token": False, "add_eos_token": False, "add_prefix_space": False, "legacy": False}))
    tokenizer = AutoTokenizer.from_pretrained(staging)
    tokenizer.chat_template = read_template("r1-distill")
    tokenizer.model_max_length = DemoModelSpec(0, 0).max_position_embeddings
    tokenizer.save_pretrained(out)
    # the R1 tokenizers mark the role tokens special; <think> and </think> stay normal text
    data = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    for added in data["added_tokens"]:
        added["special"] = added["content"] not in (THINK, END_THINK, "\n")
    write_text_atomic(out / "tokenizer.json", json.dumps(data, ensure_ascii=False))
    # llama.cpp's converter learns the added tokens (and which are control tokens) from added_tokens_decoder
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        str(added["id"]): {"content": added["content"], "special": added["special"], "lstrip": False, "rstrip": False,
                           "normalized": False, "single_word": False} for added in data["added_tokens"]}
    config["extra_special_tokens"] = [USER, ASSISTANT]
    write_text_atomic(out / "tokenizer_config.json", json.dumps(config, ensure_ascii=False, indent=1))
    shutil.move(staging / "tokenizer.model", out / "tokenizer.model")  # llama.cpp's converter reads it
    shutil.rmtree(staging)
    return out


def build_model(spec: DemoModelSpec, tokenizer_dir: Path, out: Path) -> Path:
    """A random-weight Llama with the demo tokenizer, saved as an HF folder."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size or 2 * spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads, max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True, rope_theta=10000.0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=0.6, top_p=0.95)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        shutil.copy(tokenizer_dir / name, out / name)
    return out
