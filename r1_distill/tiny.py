"""Tiny random-weight Qwen2 and Llama models with the real tokenizers, in two shapes.

No weights can be downloaded on the project's machines, so tests (and the demo) build their models
from the vocab-only GGUF files in ``shared/fixtures``: the real Qwen2 (151,936 ids) and Llama 3
(128,257 ids) vocabularies.

* Hub bases, what users start from: ``qwen2.5-math``, ``llama-3.1``, ``llama-3.3-instruct``. The
  added tokens, special tokens, chat template, embedding rows and eos ids are the hub's (Qwen2.5:
  151,665 tokens over 151,936 rows, eos ``<|endoftext|>``; Llama 3.3 Instruct: eos ``<|eot_id|>``,
  three eos ids in its config). They know nothing of R1: `train` has to give them its format.
* Released R1-Distill stand-ins: ``qwen2`` and ``llama``, with R1's tokens at DeepSeek's ids
  (models.yaml's token maps) and the R1 chat template, for tests of the released models' path.

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

VOCAB_FILES = {"qwen2": "ggml-vocab-qwen2.gguf", "llama": "ggml-vocab-llama-bpe.gguf"}
BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
# The released R1-Distill tokenizers: models.yaml's token map of the architecture, plus (Llama) a pad
# token after the vocabulary, where the fixture vocabulary has one more id.
R1_TOKEN_MAPS = {"qwen2": "qwen2", "llama": "llama3"}
R1_EXTRA = {"llama": {128256: PAD}}
NOT_SPECIAL = {"<think>", "</think>"}

QWEN25_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
                "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
QWEN25_NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                      "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}
LLAMA3_ADDED = (["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                 "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                 "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
                + [f"<|reserved_special_token_{i}|>" for i in range(3, 248)])
QWEN25_MATH_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nPlease reason step by step, and put your final answer within "
    "\\\\boxed{}.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")


@dataclass(frozen=True)
class HubTokenizer:
    """A base's tokenizer exactly as the hub ships it: its added tokens, specials, template and ids."""

    vocab: str  # qwen2 | llama
    added: tuple[str, ...]
    not_special: frozenset
    embedding_rows: int
    eos: str
    bos: str | None
    pad: str | None
    template: str | None
    config_eos: tuple[int, ...]  # config.json / generation_config.json eos_token_id
    config_bos: int | None


HUB_TOKENIZERS = {
    # Qwen/Qwen2.5-Math-1.5B: 151,665 tokens, 151,936 embedding rows, eos <|endoftext|>, no bos, ChatML
    "qwen2.5-math": HubTokenizer("qwen2", tuple(QWEN25_ADDED), frozenset(QWEN25_NOT_SPECIAL), 151936,
                                 "<|endoftext|>", None, "<|endoftext|>", QWEN25_MATH_TEMPLATE, (151643,), 151643),
    # meta-llama/Llama-3.1-8B: 128,256 tokens, eos <|end_of_text|>, no pad
    "llama-3.1": HubTokenizer("llama", tuple(LLAMA3_ADDED), frozenset(), 128256, "<|end_of_text|>",
                              "<|begin_of_text|>", None, LLAMA3_TEMPLATE, (128001,), 128000),
    # meta-llama/Llama-3.3-70B-Instruct: eos <|eot_id|>, config and generation config list three eos ids
    "llama-3.3-instruct": HubTokenizer("llama", tuple(LLAMA3_ADDED), frozenset(), 128256, "<|eot_id|>",
                                       "<|begin_of_text|>", None, LLAMA3_TEMPLATE, (128001, 128008, 128009), 128000),
}
ARCHITECTURES = {"qwen2": "qwen2", "llama": "llama", "qwen2.5-math": "qwen2", "llama-3.1": "llama",
                 "llama-3.3-instruct": "llama"}


@dataclass(frozen=True)
class TinySpec:
    architecture: str = "qwen2"  # qwen2 | llama: an R1-Distill stand-in (R1's tokens already in place)
    #   qwen2.5-math | llama-3.1 | llama-3.3-instruct: a hub base's tokenizer as shipped (no R1 tokens)
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
    from .registry import PACKAGE_REGISTRY

    src = Path(__file__).read_bytes() + read_template("r1-distill").encode() + PACKAGE_REGISTRY.read_bytes()
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


def _raw_tokenizer(tmp: Path, vocab: str):
    from transformers import AutoTokenizer

    fixtures = require_fixtures()
    tok = AutoTokenizer.from_pretrained(str(fixtures), gguf_file=VOCAB_FILES[vocab])
    tok.save_pretrained(str(tmp))
    for name in ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (tmp / name).unlink(missing_ok=True)


def _save_fast(tmp: Path, template: str | None, **special) -> None:
    from transformers import PreTrainedTokenizerFast

    # unk_token=None: transformers picks Qwen2Tokenizer by model type, whose default unk
    # `<|endoftext|>` would otherwise be appended as a token past the embedding.
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp / "tokenizer.json"), unk_token=None, **special)
    fast.chat_template = template
    fast.model_max_length = TinySpec().max_position_embeddings
    (tmp / "tokenizer.json").unlink()
    fast.save_pretrained(str(tmp))


def _shape_as_hub(tmp: Path, hub: HubTokenizer) -> None:
    """The fixture vocabulary's added tokens named and flagged as the hub's, and none past them."""
    path = tmp / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    first = min(a["id"] for a in data["added_tokens"] if a["special"])
    last = first + len(hub.added)
    vocab = data["model"]["vocab"]
    for name, token_id in list(vocab.items()):
        if token_id >= first:
            del vocab[name]
    kept = []
    for token_id, name in enumerate(hub.added, start=first):
        kept.append({"id": token_id, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                     "normalized": False, "special": name not in hub.not_special})
    data["added_tokens"] = kept
    assert len(vocab) == first and last <= hub.embedding_rows
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def tiny_tokenizer_dir(architecture: str) -> Path:
    """A saved tokenizer folder: the real vocabulary, either shaped as a hub base ships it or with R1's
    special tokens at DeepSeek's ids and the R1 chat template (a released R1-Distill model)."""
    if architecture not in ARCHITECTURES:
        raise UserError(f"no tiny tokenizer {architecture!r}: use one of {', '.join(ARCHITECTURES)}")
    target = cache_root() / "tiny" / f"tokenizer-{architecture}-{_builder_hash()}"

    def build(tmp: Path) -> None:
        from .chat_format import rename_added_tokens
        from .registry import load_registry

        if architecture in HUB_TOKENIZERS:
            hub = HUB_TOKENIZERS[architecture]
            _raw_tokenizer(tmp, hub.vocab)
            _shape_as_hub(tmp, hub)
            _save_fast(tmp, hub.template, eos_token=hub.eos, bos_token=hub.bos, pad_token=hub.pad)
            return
        _raw_tokenizer(tmp, architecture)
        renames = dict(load_registry().token_map(R1_TOKEN_MAPS[architecture]).ids)
        renames.update(R1_EXTRA.get(architecture, {}))
        rename_added_tokens(tmp, renames, NOT_SPECIAL)
        _save_fast(tmp, read_template("r1-distill"), bos_token=BOS, eos_token=EOS, pad_token=PAD)

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
        hub = HUB_TOKENIZERS.get(spec.architecture)
        eos = list(hub.config_eos) if hub else tok.eos_token_id
        eos = eos[0] if isinstance(eos, list) and len(eos) == 1 else eos
        bos = hub.config_bos if hub else tok.bos_token_id
        dims = dict(
            vocab_size=hub.embedding_rows if hub else len(tok), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
            num_key_value_heads=spec.num_key_value_heads, max_position_embeddings=spec.max_position_embeddings,
            bos_token_id=bos, eos_token_id=eos, pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(spec.seed)
        if ARCHITECTURES[spec.architecture] == "qwen2":
            model = Qwen2ForCausalLM(Qwen2Config(**dims, tie_word_embeddings=True, rope_theta=10000.0))
        elif ARCHITECTURES[spec.architecture] == "llama":
            model = LlamaForCausalLM(LlamaConfig(**dims, tie_word_embeddings=False, rope_theta=500000.0))
        else:
            raise UserError(f"no tiny model for architecture {spec.architecture!r}: use qwen2 or llama")
        model = model.to(getattr(torch, spec.dtype))
        model.generation_config = GenerationConfig(
            bos_token_id=bos, eos_token_id=eos, pad_token_id=tok.pad_token_id,
            do_sample=True, temperature=0.6, top_p=0.95,
        )
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))

    return _build_once(target, build)


def build_hub_student(base: str = "qwen2.5-math", spec: TinySpec | None = None) -> Path:
    """A tiny hub base (``qwen2.5-math``, ``llama-3.1``, ``llama-3.3-instruct``) given R1's format the way
    `train` gives it, untrained. Cached."""
    from .chat_format import format_spec, prepare_student_folder
    from .registry import load_registry

    if base not in HUB_TOKENIZERS:
        raise UserError(f"no tiny hub base {base!r}: use one of {', '.join(HUB_TOKENIZERS)}")
    spec = spec or TinySpec(architecture=base)
    key = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:10]
    target = cache_root() / "tiny" / f"student-{base}-{key}-{_builder_hash()}"

    def build(tmp: Path) -> None:
        registry = load_registry()
        maps = {"qwen2": "qwen2", "llama": "llama3"}
        pad = PAD if ARCHITECTURES[base] == "qwen2" else EOS
        prepare_student_folder(build_tiny_model(spec), tmp, format_spec(registry, "r1-distill", pad=pad,
                                                                         token_map=maps[ARCHITECTURES[base]]), registry)

    return _build_once(target, build)
