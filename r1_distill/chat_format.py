"""Give a student the chat format it is trained and served in, whatever base it starts from.

A hub base (Qwen2.5-Math, Llama 3.1, Llama 3.3 Instruct) knows nothing of R1's tokens: its tokenizer
splits `<think>` and `<｜end▁of▁sentence｜>` into pieces, and its eos is its own. Trained that way, a
student learns the markers as text and never stops. Before training:

* Where models.yaml has a token map for the base (DeepSeek renamed added tokens of Qwen2.5 and
  Llama 3 at known ids in the released R1-Distill tokenizers), those added tokens are renamed in
  place: same ids, same embedding rows. A row the base never trained (Llama 3's reserved tokens are
  near zero) starts from the mean of the trained rows.
* Any format token still missing is added (special, except `<think>`/`</think>`, which R1-Distill
  keeps as normal tokens so that decoding shows them); the embeddings grow when the base has no
  spare rows, and new rows start from the mean of the existing ones.
* eos, bos and pad are set on the tokenizer, config and generation config, and the result is
  checked: every format token is one token, and the eos the template writes is the tokenizer's eos.

Anything that cannot hold is a UserError (exit 2), never a student trained on plain-text markers.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import UserError
from .registry import ChatFormat, Registry, TokenMap, read_template

# an embedding row whose norm is below this share of the median row norm was never trained
UNTRAINED_ROW_NORM = 0.05


@dataclass
class FormatSpec:
    """What a student must have: the format's tokens and templates, and where they may go."""

    name: str
    template: str
    train_template: str
    eos_token: str
    bos_token: Optional[str]
    pad_token: Optional[str]
    markers: list[str]
    normal: list[str]  # added as non-special tokens (kept when decoding)
    token_map: Optional[TokenMap] = None  # required (from a registry student) or detected
    token_map_name: Optional[str] = None
    token_map_required: bool = False

    @property
    def tokens(self) -> list[str]:
        seen: list[str] = []
        for t in [self.bos_token, self.eos_token, self.pad_token, *self.markers]:
            if t and t not in seen:
                seen.append(t)
        return seen


@dataclass
class FormatPlan:
    """What preparing the tokenizer did, and what the model must do to match (recorded in the manifest)."""

    format: str
    eos_token: str
    eos_token_id: int
    bos_token_id: Optional[int]
    pad_token_id: Optional[int]
    token_map: Optional[str] = None
    renamed: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (base's token, new token)
    added: dict[str, int] = field(default_factory=dict)
    already_present: list[str] = field(default_factory=list)
    embedding_rows: Optional[tuple[int, int]] = None  # (before, after) when resized
    reinitialised: list[int] = field(default_factory=list)  # rows set to the mean (filled by prepare_model)

    @property
    def changed_ids(self) -> list[int]:
        return sorted(set(self.renamed) | set(self.added.values()))

    def as_dict(self) -> dict:
        return {"format": self.format, "eos_token": self.eos_token, "eos_token_id": self.eos_token_id,
                "bos_token_id": self.bos_token_id, "pad_token_id": self.pad_token_id, "token_map": self.token_map,
                "renamed": {str(i): {"from": a, "to": b} for i, (a, b) in sorted(self.renamed.items())},
                "added": self.added, "already_present": self.already_present,
                "embedding_rows": list(self.embedding_rows) if self.embedding_rows else None,
                "reinitialised_rows": self.reinitialised}


def format_spec(registry: Registry, template: str, *, eos: Optional[str] = None, bos: Optional[str] = None,
                pad: Optional[str] = None, token_map: Optional[str] = None) -> FormatSpec:
    fmt: ChatFormat = registry.chat_format(template)
    spec = FormatSpec(name=template, template=template, train_template=fmt.train_template,
                      eos_token=eos or fmt.eos_token, bos_token=bos if bos is not None else fmt.bos_token,
                      pad_token=pad if pad is not None else fmt.pad_token, markers=list(fmt.markers),
                      normal=list(fmt.normal))
    if token_map:
        spec.token_map, spec.token_map_name, spec.token_map_required = registry.token_map(token_map), token_map, True
    return spec


def _model_type(config) -> str:
    return getattr(config, "model_type", "") or ""


def _embedding_rows(config) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.vocab_size)


def detect_token_map(registry: Registry, tokenizer, config) -> tuple[Optional[str], Optional[TokenMap]]:
    """The registry's token map that fits this base (architecture, rows, added tokens at its ids), if any."""
    for name, tmap in registry.token_maps.items():
        if tmap.architecture == _model_type(config) and _map_problem(tmap, tokenizer, config) is None:
            return name, tmap
    return None, None


def _map_problem(tmap: TokenMap, tokenizer, config) -> Optional[str]:
    rows = _embedding_rows(config)
    if rows != tmap.vocab_size:
        return f"the map is for bases with {tmap.vocab_size} embedding rows, this one has {rows}"
    added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
    for token_id, new in tmap.ids.items():
        if token_id >= rows:
            return f"id {token_id} ({new}) is past the embedding's {rows} rows"
        current = added.get(token_id)
        if current is None:
            piece = tokenizer.convert_ids_to_tokens(token_id) if token_id < len(tokenizer) else None
            if piece is not None and piece != new:
                return f"id {token_id} holds the ordinary token {piece!r}, not an added token that can be renamed"
    return None


def _is_single_token(tokenizer, token: str) -> bool:
    ids = tokenizer.encode(token, add_special_tokens=False)
    return len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids[0]) == token


def rename_added_tokens(tokenizer_dir: Path, renames: dict[int, str], normal: set[str]) -> None:
    """Rename added tokens in a saved fast tokenizer, in place: same ids, new text (what DeepSeek did)."""
    path = tokenizer_dir / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data["model"].get("vocab")
    by_id = {v: k for k, v in vocab.items()} if isinstance(vocab, dict) else {}
    present = {added["id"] for added in data["added_tokens"]}
    for added in data["added_tokens"]:
        new = renames.get(added["id"])
        if new is None:
            continue
        old, added["content"] = added["content"], new
        added["special"] = new not in normal
        added["normalized"] = False
        if by_id.get(added["id"]) == old:
            del vocab[old]
            vocab[new] = added["id"]
    for token_id, new in renames.items():
        if token_id not in present:  # a row with no token yet (a base that pads its embedding)
            data["added_tokens"].append({"id": token_id, "content": new, "single_word": False, "lstrip": False,
                                         "rstrip": False, "normalized": False, "special": new not in normal})
    data["added_tokens"].sort(key=lambda a: a["id"])
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    config_file = tokenizer_dir / "tokenizer_config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        decoder = config.get("added_tokens_decoder") or {}
        for token_id, new in renames.items():
            entry = decoder.get(str(token_id))
            if entry is not None:
                entry.update(content=new, special=new not in normal, normalized=False)
        for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
            old_value = config.get(key)
            if isinstance(old_value, str) and old_value not in {a["content"] for a in data["added_tokens"]} \
                    and old_value not in (vocab or {}):
                config[key] = None  # its token was renamed away; set again by the caller
        config_file.write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")


def prepare_tokenizer(tokenizer, config, spec: FormatSpec, registry: Registry):
    """The tokenizer with every format token one token, and the plan the model must follow."""
    from transformers import AddedToken, AutoTokenizer

    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"{type(tokenizer).__name__} is a slow tokenizer: r1-distill needs a fast (tokenizers) one "
                        "to place the chat format's tokens; save the base with a tokenizer.json")
    present = [t for t in spec.tokens if _is_single_token(tokenizer, t)]
    missing = [t for t in spec.tokens if t not in present]
    plan = FormatPlan(format=spec.name, eos_token=spec.eos_token, eos_token_id=-1, bos_token_id=None,
                      pad_token_id=None, already_present=present)
    tmap, map_name = spec.token_map, spec.token_map_name
    if tmap is not None:
        problem = _map_problem(tmap, tokenizer, config)
        if problem:
            raise UserError(f"token map {map_name!r} in models.yaml does not fit this base: {problem}. Remove "
                            "token_map from the student to add the tokens as new ones, or fix the ids")
    elif missing:
        map_name, tmap = detect_token_map(registry, tokenizer, config)
    if missing and tmap is not None:
        renames = {i: t for i, t in tmap.ids.items() if t in missing}
        if renames:
            names = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
            with tempfile.TemporaryDirectory(prefix="r1-tokenizer-") as tmp:
                tokenizer.save_pretrained(tmp)
                rename_added_tokens(Path(tmp), renames, set(spec.normal))
                template = tokenizer.chat_template
                tokenizer = AutoTokenizer.from_pretrained(tmp)
                tokenizer.chat_template = template
            plan.renamed = {i: (names.get(i, f"(row {i})"), t) for i, t in renames.items()}
            plan.token_map = map_name
            missing = [t for t in missing if t not in renames.values()]
    if missing:
        special = [AddedToken(t, special=True, normalized=False) for t in missing if t not in spec.normal]
        normal = [AddedToken(t, special=False, normalized=False) for t in missing if t in spec.normal]
        if special:
            tokenizer.add_tokens(special, special_tokens=True)
        if normal:
            tokenizer.add_tokens(normal)
        plan.added = {t: tokenizer.convert_tokens_to_ids(t) for t in missing}
    tokenizer.eos_token = spec.eos_token
    if spec.bos_token:
        tokenizer.bos_token = spec.bos_token
    tokenizer.pad_token = spec.pad_token or spec.eos_token
    plan.eos_token_id = tokenizer.eos_token_id
    plan.bos_token_id = tokenizer.bos_token_id if spec.bos_token else None
    plan.pad_token_id = tokenizer.pad_token_id
    check_format(tokenizer, spec)
    return tokenizer, plan


def check_format(tokenizer, spec: FormatSpec) -> None:
    """Every format token is one token, and a rendered conversation ends in the tokenizer's eos id."""
    split = [t for t in spec.tokens if not _is_single_token(tokenizer, t)]
    if split:
        raise UserError(f"after preparing the tokenizer, {', '.join(split)} still encode to several tokens: the "
                        "student would learn them as text and never stop. Use a fast tokenizer or another base")
    template = tokenizer.chat_template
    try:
        tokenizer.chat_template = read_template(spec.train_template)
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2", "reasoning_content": "1+1=2"}],
            tokenize=True, return_dict=True)["input_ids"]
    finally:
        tokenizer.chat_template = template
    if not ids or ids[-1] != tokenizer.eos_token_id:
        raise UserError(f"the {spec.name} template does not end a turn with the tokenizer's eos "
                        f"{tokenizer.eos_token!r}: the student would not stop")


def weight_rows(weight) -> int:
    """An embedding matrix's rows, also when ZeRO-3 partitioned it at load (its local shape is then [0])."""
    return int(getattr(weight, "ds_shape", weight.shape)[0])


@contextmanager
def _gathered(params):
    """Under DeepSpeed ZeRO-3 parameters are partitioned at load time: gather them to edit rows."""
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
            yield
    else:
        with nullcontext():
            yield


def prepare_model(model, plan: FormatPlan, tokenizer) -> None:
    """Rows for the plan's tokens (resized when the base has none spare, new and untrained rows from the
    mean) and the ids on config and generation config."""
    import torch

    rows_before = weight_rows(model.get_input_embeddings().weight)
    if len(tokenizer) > rows_before:
        try:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        except (NotImplementedError, AttributeError, ValueError) as exc:
            raise UserError(f"{type(model).__name__} cannot grow its embeddings for the chat format's tokens "
                            f"({exc}) and has no spare rows: choose a base with room, or a token_map") from None
        plan.embedding_rows = (rows_before, weight_rows(model.get_input_embeddings().weight))
    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not matrices[0]:
        matrices.append(output.weight)
    known = min(rows_before, min(plan.changed_ids, default=rows_before))
    with _gathered(matrices), torch.no_grad():
        reinit = set(plan.added.values())
        weight = matrices[0]
        norms = weight[:known].float().norm(dim=-1)
        typical = float(norms.median()) if known else 0.0
        for token_id in plan.renamed:
            if float(weight[token_id].float().norm()) < UNTRAINED_ROW_NORM * typical:
                reinit.add(token_id)
        for matrix in matrices:
            mean = matrix[:known].float().mean(dim=0).to(matrix.dtype)
            for token_id in reinit:
                matrix[token_id] = mean
    plan.reinitialised = sorted(reinit)
    for target in (model.config, getattr(model, "generation_config", None)):
        if target is None:
            continue
        target.eos_token_id = plan.eos_token_id
        target.pad_token_id = plan.pad_token_id
        if plan.bos_token_id is not None:
            target.bos_token_id = plan.bos_token_id


def embedding_modules(model) -> list[str]:
    """Names of the input and output embeddings, for PEFT's modules_to_save: with LoRA, the rows of renamed
    and added tokens must train too. (PEFT's trainable_token_indices would train those rows only, but its
    wrapper of a tied output layer has no `bias`, which TRL's fused LM head reads.)"""
    wanted = {id(model.get_input_embeddings()), id(model.get_output_embeddings())}
    return [name.rsplit(".", 1)[-1] for name, module in model.named_modules() if id(module) in wanted]


def trained_rows_note(plan: FormatPlan) -> str:
    parts = []
    if plan.renamed:
        parts.append(f"renamed {len(plan.renamed)} added tokens at DeepSeek's ids ({plan.token_map})")
    if plan.added:
        parts.append(f"added {len(plan.added)} tokens" + (f", embeddings {plan.embedding_rows[0]} -> "
                                                          f"{plan.embedding_rows[1]} rows" if plan.embedding_rows else ""))
    return "; ".join(parts) or "the base already has the format's tokens"



def prepare_student_folder(base: str | Path, out: str | Path, spec: FormatSpec, registry: Registry) -> FormatPlan:
    """A base given the format and saved, untrained: what `train` starts from (and what tests export and
    serve when a training run would add nothing to what they check)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer, plan = prepare_tokenizer(AutoTokenizer.from_pretrained(base), AutoConfig.from_pretrained(base), spec,
                                        registry)
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    prepare_model(model, plan, tokenizer)
    tokenizer.chat_template = read_template(spec.template)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return plan
