"""The model registry: `models.yaml`, its schema, and the loader every stage uses.

Which file: ``--models FILE`` on the command line, else ``$R1_DISTILL_MODELS``, else the
``models.yaml`` shipped with the package. Every section is checked strictly: an unknown key, a wrong
type or a missing field is a :class:`~r1_distill.errors.UserError` naming the file, the key and what
was expected.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import UserError

PACKAGE_REGISTRY = Path(__file__).with_name("models.yaml")
ENV_VAR = "R1_DISTILL_MODELS"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingDefaults(Strict):
    temperature: float = Field(ge=0)
    top_p: float = Field(gt=0, le=1)
    max_new_tokens: int = Field(gt=0)
    system_prompt: Optional[str] = None
    prompt_suffix: str
    force_think_prefix: str  # the response is forced to start with this (R1 starts with "<think>\n")
    samples: int = Field(gt=0)


class Defaults(Strict):
    sampling: SamplingDefaults
    # reasoning_effort -> thinking budget in tokens, for serve/ and ui/
    reasoning_effort_budgets: dict[Literal["low", "medium", "high"], int]


class Teacher(Strict):
    description: str = ""
    kind: Literal["openai", "vllm", "transformers", "llamacpp"]
    base_url: Optional[str] = None  # openai
    model: Optional[str] = None  # openai: the served model name; others: hub id, folder or GGUF
    api_key_env: Optional[str] = None  # openai: the environment variable holding the key
    tensor_parallel_size: int = 1  # vllm
    data_parallel_size: int = 1  # vllm: engine processes, prompts sharded over them
    max_model_len: Optional[int] = None
    chat_template: Optional[str] = None

    @model_validator(mode="after")
    def _check_kind(self):
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an 'openai' teacher needs base_url")
        if not self.model:
            raise ValueError("a teacher needs model (served name, hub id, folder or GGUF file)")
        return self


class GpuEstimate(Strict):
    count: int = Field(ge=0)  # 0: runs on a CPU
    memory_gb_each: int = Field(ge=0)
    note: str = ""


class OnPolicyRecipe(Strict):
    """On-policy distillation's settings for a student (`train --method on-policy`): Thinking Machines' recipe
    (tinker-cookbook recipes/distillation/on_policy_distillation.py: group_size 4, max_tokens 4096, temperature 1;
    its README: lr 1e-4 with LoRA, 5e-5 full), the student sampling at temperature 1 and the teacher scoring
    with reverse KL."""

    max_new_tokens: int = Field(default=4096, gt=0)  # the rollout: long enough to close </think> on most prompts
    samples_per_prompt: int = Field(default=4, gt=0)  # rollouts of each prompt (the cookbook's group_size)
    learning_rate_lora: float = Field(default=1e-4, gt=0)
    learning_rate_full: float = Field(default=5e-5, gt=0)
    temperature: float = Field(default=1.0, gt=0)


class Recipe(Strict):
    method: Literal["full", "lora", "qlora"]
    learning_rate: float = Field(gt=0)
    epochs: float = Field(gt=0)
    max_length: int = Field(gt=0)
    effective_batch: int = Field(gt=0)  # sequences per optimizer step, across all GPUs
    per_device_batch: int = Field(default=1, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    lora_r: int = Field(default=64, gt=0)
    lora_alpha: int = Field(default=128, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    gpus: GpuEstimate
    accelerate_config: Optional[str] = None  # shipped config for `accelerate launch`
    on_policy: OnPolicyRecipe = OnPolicyRecipe()  # `train --method on-policy`'s settings for this student


class LongContext(Strict):
    """What to change in the base config to train at long context (open-r1 for Qwen2.5-Math)."""

    max_position_embeddings: int = Field(gt=0)
    rope_theta: float = Field(gt=0)


class ChatFormat(Strict):
    """A chat format a student is trained and served in: its templates and the tokens they write."""

    train_template: str  # keeps the reasoning and marks the trained span with {% generation %}
    eos_token: str
    bos_token: Optional[str] = None
    pad_token: Optional[str] = None
    markers: list[str]  # the other tokens the template writes, each must be one token
    normal: list[str] = []  # markers that are not special tokens (shown when decoding)


class TokenMap(Strict):
    """Where DeepSeek put R1's tokens in a base's vocabulary: added tokens renamed at these ids."""

    description: str = ""
    architecture: str  # the base config's model_type
    vocab_size: int = Field(gt=0)  # embedding rows of the bases it fits
    ids: dict[int, str]

    @model_validator(mode="after")
    def _check_ids(self):
        past = [i for i in self.ids if i >= self.vocab_size]
        if past:
            raise ValueError(f"ids {past} are past vocab_size {self.vocab_size}")
        return self


class Student(Strict):
    description: str = ""
    base: str  # hub id or local folder of the base model
    released_as: Optional[str] = None  # DeepSeek's released distilled model, for comparison
    architecture: Literal["qwen2", "llama"]
    params_b: float = Field(gt=0)
    native_context: int = Field(gt=0)
    rope_theta: float = Field(gt=0)
    long_context: Optional[LongContext] = None
    chat_template: str  # a template name under r1_distill/templates, or a path
    eos_token: str
    bos_token: Optional[str] = None
    pad_token: Optional[str] = None
    token_map: Optional[str] = None  # a name in token_maps: where the format's tokens go in the base
    recipe: Recipe
    tiny: bool = False  # a test/demo model built here, not downloaded


class ExportPreset(Strict):
    description: str = ""
    quants: list[str] = Field(min_length=1)


class PublishedFigures(Strict):
    """Figures a paper or a harness published for the released students on a benchmark, in percent."""

    source: str  # where they come from (paper and table, or the harness and its version)
    label: str = ""  # the short name of the source in the table's columns (default: the source)
    figures: dict[str, dict[str, float]]  # student name -> metric (pass@1, cons@64) -> percent


class BenchWindow(Strict):
    since: Optional[str] = None  # YYYY-MM-DD, inclusive (LiveCodeBench's contest_date)
    until: Optional[str] = None


class Benchmark(Strict):
    """A named benchmark of `r1-distill eval --bench NAME`: where its rows are, how they become prompts,
    how the answers are graded, and the released students' published figures on it."""

    description: str = ""
    dataset: str  # a hub dataset id, or a JSONL/Parquet file (relative to this registry's folder)
    subset: Optional[str] = None  # the hub dataset's configuration
    split: str = "test"
    format: Literal["math", "multiple-choice", "livecodebench"]
    fields: dict[Literal["id", "problem", "answer"], str] = {}  # math: the columns, when not id/problem/answer
    prompt: str  # a prompt of r1_distill.benchmarks.PROMPTS, or a template with {problem}
    samples: int = Field(gt=0)
    shuffle_seed: int = 0  # multiple choice: the choices' order is drawn from (seed, problem id)
    window: Optional[BenchWindow] = None
    published: list[PublishedFigures] = []


class Registry(Strict):
    version: Literal[1]
    defaults: Defaults
    teachers: dict[str, Teacher]
    students: dict[str, Student]
    export_presets: dict[str, ExportPreset]
    chat_formats: dict[str, ChatFormat]
    token_maps: dict[str, TokenMap] = {}
    benchmarks: dict[str, Benchmark] = {}
    source: Optional[str] = None  # the file it was read from (set by the loader)

    @model_validator(mode="after")
    def _check_references(self):
        for name, student in self.students.items():
            if student.token_map and student.token_map not in self.token_maps:
                raise ValueError(f"student {name}: token_map {student.token_map!r} is not in token_maps")
            if student.chat_template in self.chat_formats and student.token_map:
                tmap = self.token_maps[student.token_map]
                if tmap.architecture != student.architecture:
                    raise ValueError(f"student {name}: token_map {student.token_map!r} is for "
                                     f"{tmap.architecture} bases, the student is {student.architecture}")
        for name, bench in self.benchmarks.items():
            for published in bench.published:
                unknown = [s for s in published.figures if s not in self.students]
                if unknown:
                    raise ValueError(f"benchmark {name}: published figures for unknown students {unknown}")
        return self

    def benchmark(self, name: str) -> Benchmark:
        try:
            return self.benchmarks[name]
        except KeyError:
            raise UserError(f"unknown benchmark {name!r} in {self.source}: known are {', '.join(self.benchmarks)}; "
                            "or pass a JSONL/Parquet file or a hub dataset id") from None

    def chat_format(self, name: str) -> ChatFormat:
        try:
            return self.chat_formats[name]
        except KeyError:
            raise UserError(f"chat format {name!r} is not in chat_formats of {self.source}: known are "
                            f"{', '.join(self.chat_formats)}") from None

    def token_map(self, name: str) -> TokenMap:
        try:
            return self.token_maps[name]
        except KeyError:
            raise UserError(f"token map {name!r} is not in token_maps of {self.source}") from None

    def student(self, name: str) -> Student:
        try:
            return self.students[name]
        except KeyError:
            raise UserError(
                f"unknown student {name!r} in {self.source}: known are {', '.join(self.students)}; "
                "or pass a hub id or a local model folder"
            ) from None

    def teacher(self, name: str) -> Teacher:
        try:
            return self.teachers[name]
        except KeyError:
            raise UserError(
                f"unknown teacher {name!r} in {self.source}: known are {', '.join(self.teachers)}; "
                "or pass a URL, hub id, folder or GGUF file"
            ) from None


def registry_path(path: str | os.PathLike | None = None) -> Path:
    if path:
        return Path(path)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return PACKAGE_REGISTRY


def _describe_error(err: dict) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{key}' (check its spelling)"
    if kind == "missing":
        return f"missing key '{key}'"
    return f"key '{key}': {err['msg']} (got {err.get('input')!r})"


def parse_registry(data: object, source: str) -> Registry:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Registry.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = "; ".join(_describe_error(e) for e in exc.errors())
        raise UserError(f"{source}: {problems}") from None


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Registry:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the model registry {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    return parse_registry(data, path)


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    resolved = registry_path(path)
    if not resolved.is_file():
        raise UserError(f"model registry {resolved} does not exist: pass --models FILE or set {ENV_VAR}")
    return _load_cached(str(resolved), resolved.stat().st_mtime)


def template_path(name: str) -> Path:
    """A chat template by registry name (``r1-distill``) or path."""
    shipped = Path(__file__).with_name("templates") / f"{name}.jinja"
    if shipped.is_file():
        return shipped
    candidate = Path(name)
    if candidate.is_file():
        return candidate
    raise UserError(f"chat template {name!r} is neither a shipped template nor a file")


def read_template(name: str) -> str:
    return template_path(name).read_text(encoding="utf-8")
