"""Tiny random-weight Qwen2 and Llama students with the real tokenizers and the R1 chat format.

No weights can be downloaded on the project's machines, so tests (and the demo) build their models
from the vocab-only GGUF files in ``shared/fixtures``: the real Qwen2 (151,936 ids) and Llama 3
(128,257 ids) tokenizers. The special tokens are renamed to the ones the R1-Distill tokenizers carry
at the same ids (``<｜end▁of▁sentence｜>``, ``<｜User｜>``, ``<think>`` ...), so every tool in the chain
(transformers, TRL, llama.cpp's converter, llama-cpp-python, vLLM's reasoning parser) sees what it
would see with a real student.

Loading a vocab from GGUF takes 15-40 s, so tokenizers and models are built once and cached under
``$R1_DISTILL_CACHE`` (default ``~/.cache/r1-distill``), keyed by a hash of this file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UserError
from .files import cache_root
from .registry import read_template

FIXTURES_ENV = "R1_DISTILL_FIXTURES"

# id -> the token the R1-Distill tokenizer has there
R1_SPECIAL_TOKENS = {
    "qwen2": {
        151643: "<｜end▁of▁sentence｜>",
        151644: "<｜User｜>",
        151645: "<｜Assistant｜>",
        151646: "<｜begin▁of▁sentence｜>",
        151647: "<|EOT|>",
        151648: "<think>",
        151649: "</think>",
        151654: "<｜▁pad▁｜>",
    },
    "llama": {
        128000: "<｜begin▁of▁sentence｜>",
        128001: "<｜end▁of▁sentence｜>",
        128011: "<｜User｜>",
        128012: "<｜Assistant｜>",
        128013: "<think>",
        128014: "</think>",
        128256: "<｜▁pad▁｜>",
    },
}
# the non-special ones: `<think>` and `</think>` are normal (not skipped when decoding) in R1-Distill
NOT_SPECIAL = {"<think>", "</think>"}
VOCAB_FILES = {"qwen2": "ggml-vocab-qwen2.gguf", "llama": "ggml-vocab-llama-bpe.gguf"}
BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"


@dataclass(frozen=True)
class TinySpec:
    architecture: str = "qwen2"
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4  # head size 32: the smallest vLLM's CPU attention takes
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096
    seed: int = 0
    dtype: str = "float32"  # saved weights' dtype (bfloat16 for real-size benchmark models)


def fixtures_dir() -> Path | None:
    """`$R1_DISTILL_FIXTURES`, else ``shared/fixtures`` beside the checkout; None when absent."""
    candidates = []
    if os.environ.get(FIXTURES_ENV):
        candidates.append(Path(os.environ[FIXTURES_ENV]))
    repo = Path(__file__).resolve().parent.parent
    candidates += [repo.parent / "shared" / "fixtures", repo / "shared" / "fixtures", Path.cwd().parent / "shared" / "fixtures"]
    for c in candidates:
        if (c / VOCAB_FILES["qwen2"]).is_file() and (c / VOCAB_FILES["llama"]).is_file():
            return c
    return None


def require_fixtures() -> Path:
    found = fixtures_dir()
    if found is None:
        raise UserError(
            "tokenizer fixtures not found: put the shared/ folder beside the checkout, or set "
            f"{FIXTURES_ENV} to a folder with {', '.join(VOCAB_FILES.values())}"
        )
    return found


def _builder_hash() -> str:
    src = Path(__file__).read_bytes() + read_template("r1-distill").encode()
    return hashlib.sha256(src).hexdigest()[:12]


def _build_once(target: Path, build) -> Path:
    """Build into a temporary folder and rename it into place: a cache entry is whole or absent."""
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("ok")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _rename_special_tokens(tokenizer_dir: Path, architecture: str) -> None:
    path = tokenizer_dir / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    renames = R1_SPECIAL_TOKENS[architecture]
    vocab = data["model"]["vocab"]
    by_id = {v: k for k, v in vocab.items()}
    for added in data["added_tokens"]:
        new = renames.get(added["id"])
        if new is None:
            continue
        old = added["content"]
        added["content"] = new
        added["special"] = new not in NOT_SPECIAL
        if by_id.get(added["id"]) == old:
            del vocab[old]
            vocab[new] = added["id"]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def tiny_tokenizer_dir(architecture: str) -> Path:
    """A saved tokenizer folder: the real vocabulary, R1 special tokens, the R1 chat template."""
    if architecture not in VOCAB_FILES:
        raise UserError(f"no tiny tokenizer for architecture {architecture!r}: use qwen2 or llama")
    target = cache_root() / "tiny" / f"tokenizer-{architecture}-{_builder_hash()}"

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        fixtures = require_fixtures()
        tok = AutoTokenizer.from_pretrained(str(fixtures), gguf_file=VOCAB_FILES[architecture])
        tok.save_pretrained(str(tmp))
        _rename_special_tokens(tmp, architecture)
        for name in ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
            (tmp / name).unlink(missing_ok=True)
        # unk_token=None: transformers picks Qwen2Tokenizer by model type, whose default unk
        # `<|endoftext|>` would otherwise be appended as a 151,937th token past the embedding.
        fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp / "tokenizer.json"),
                                       bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=None)
        fast.chat_template = read_template("r1-distill")
        fast.model_max_length = TinySpec().max_position_embeddings
        (tmp / "tokenizer.json").unlink()
        fast.save_pretrained(str(tmp))

    return _build_once(target, build)


def load_tiny_tokenizer(architecture: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir(architecture)))


def build_tiny_model(spec: TinySpec = TinySpec(), out_dir: str | Path | None = None) -> Path:
    """A saved HF model folder (weights, config, tokenizer, generation config). Cached by spec."""
    key = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:10]
    target = Path(out_dir) if out_dir else cache_root() / "tiny" / f"model-{spec.architecture}-{key}-{_builder_hash()}"

    def build(tmp: Path) -> None:
        import torch
        from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

        tok = load_tiny_tokenizer(spec.architecture)
        dims = dict(
            vocab_size=len(tok), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
            num_key_value_heads=spec.num_key_value_heads, max_position_embeddings=spec.max_position_embeddings,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(spec.seed)
        if spec.architecture == "qwen2":
            model = Qwen2ForCausalLM(Qwen2Config(**dims, tie_word_embeddings=True, rope_theta=10000.0))
        elif spec.architecture == "llama":
            model = LlamaForCausalLM(LlamaConfig(**dims, tie_word_embeddings=False, rope_theta=500000.0))
        else:
            raise UserError(f"no tiny model for architecture {spec.architecture!r}: use qwen2 or llama")
        model = model.to(getattr(torch, spec.dtype))
        model.generation_config = GenerationConfig(
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            do_sample=True, temperature=0.6, top_p=0.95,
        )
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))

    return _build_once(target, build)
