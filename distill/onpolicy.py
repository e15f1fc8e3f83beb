"""`r1-distill train --method on-policy`: on-policy distillation on TRL's own trainers.

The student samples completions for the traces' prompts and the teacher scores every token of them
(GKD, arXiv 2306.13649; on-policy distillation as Qwen3 built its small models). No trainer is
written here; the teacher decides which of TRL's is used:

* a local HF teacher (hub id, folder, or a models.yaml teacher served by vllm/transformers) with the
  student's tokenizer: fully on-policy (lambda 1) on a GPU, `trl.DistillationTrainer`, as TRL recommends
  for that case: the loss chunk by chunk (never both models' [batch, length, vocabulary] logits), vLLM
  generation where vLLM is installed. Otherwise `trl.experimental.gkd.GKDTrainer`: lambda mixes on-policy
  samples (probability lambda per step) with the traces' own completions (off-policy), and on a CPU,
  where neither trainer has vLLM, it samples with its KV cache as well. `--on-policy-trainer` picks one.
  Both take the generalized JSD over the full vocabulary (beta 0 forward KL, 1 reverse KL, 0.5 JSD).
* a URL teacher (an OpenAI-compatible server: `r1-distill serve`, llama-server, vLLM):
  `trl.experimental.server_distillation.ServerDistillationTrainer`, fully on-policy, reverse KL on
  the sampled tokens (the teacher's log-probability of each token the student sampled). vLLM answers
  `prompt_logprobs` in one request per batch; a server without it (ours) is asked once per completion
  token, the token forced with `logit_bias` and its log-probability read from `logprobs` (computed
  before the bias); the server's prefix cache makes each ask one token's forward pass.
* a local teacher with another tokenizer (a Llama teacher for a Qwen student):
  `trl.experimental.gold.GOLDTrainer` with its cross-tokenizer loss (ULD, arXiv 2402.12030): the
  distance between the two models' sorted next-token distributions, the sequences aligned by their
  text (so --divergence/--beta do not apply). lambda mixes on- and off-policy as with GKD.

Outputs are SFT's: the HF folder with the R1 inference template, manifest, model card, loss plot
(the divergence), log history, checkpoints and --resume. Compute is counted: teacher forward passes
(sequences scored) and the tokens the student sampled and the teacher scored.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from r1_distill.distill.common import (BatchPlan, r1_generation_config, run_metrics, run_trainer, save_trained_model,
                                      shared_arguments, write_run_record)
from r1_distill.distill.distributed import COLLECTIVE_TIMEOUT_MINUTES
from r1_distill.errors import UserError
from r1_distill.manifest import file_digest

DIVERGENCES = {"forward": 0.0, "reverse": 1.0, "jsd": 0.5}
TRAINERS = ("auto", "distillation", "gkd")  # for a local teacher with the student's tokenizer
PROBE_USER, PROBE_ASSISTANT = "<｜User｜>", "<｜Assistant｜>"  # R1's chat markers: a probe of the special tokens too
# vllm#42019: with prefix caching on (vLLM's default), prompt log-probabilities of cached positions can be stale
VLLM_PREFIX_CACHING_NOTICE = ("notice: the teacher server {root} answers prompt_logprobs (vLLM): with prefix caching on, "
                              "vLLM can score the same tokens differently by request order, so run it with "
                              "`vllm serve ... --no-enable-prefix-caching`")


def _recipe_fields(student: str, models_file: Optional[str]) -> dict:
    """A models.yaml student's recipe, as on-policy's defaults, as `train` takes it: its lengths, epochs and batch,
    and its `on_policy` block (rollout length, samples per prompt, temperature, learning rate: on-policy trains every
    weight, so the full-weight rate); nothing for a hub id or a folder."""
    from r1_distill.registry import load_registry

    entry = load_registry(models_file).students.get(student)
    if entry is None:
        return {}
    r, op = entry.recipe, entry.recipe.on_policy
    return {"learning_rate": op.learning_rate_full, "epochs": r.epochs, "max_length": r.max_length,
            "effective_batch": r.effective_batch, "per_device_batch": r.per_device_batch,
            "max_new_tokens": op.max_new_tokens, "samples_per_prompt": op.samples_per_prompt,
            "temperature": op.temperature}


@dataclass
class OnPolicyConfig:
    student: str  # models.yaml student, hub id or HF folder (an SFT student too)
    teacher: str  # models.yaml teacher, hub id, HF folder or http(s) URL of an OpenAI-compatible server
    traces: str  # kept.jsonl: the prompts, and the off-policy completions when lmbda < 1
    out: str
    lmbda: float = 1.0  # probability that a step trains on the student's own samples (GKD's lambda)
    divergence: Optional[str] = None  # forward | reverse | jsd; default: reverse, or jsd when beta is given
    beta: Optional[float] = None  # generalized JSD interpolation: 0 forward KL, 1 reverse KL
    temperature: float = 1.0  # the student's sampling temperature
    max_new_tokens: int = 256
    samples_per_prompt: int = 1  # the student's rollouts of each prompt (Thinking Machines' recipe: 4)
    trainer: str = "auto"  # auto | distillation | gkd: local_trainer_name()
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_length: int = 2048
    effective_batch: int = 8
    per_device_batch: int = 4
    resume: bool = False
    save_steps: float = 0.1
    logging_steps: Optional[int] = None
    precision: Optional[str] = None
    gradient_checkpointing: Optional[bool] = None
    seed: int = 0
    print_logs: bool = True
    models_file: Optional[str] = None
    collective_timeout_minutes: float = COLLECTIVE_TIMEOUT_MINUTES  # how long a worker waits for the others

    @classmethod
    def from_train(cls, c) -> "OnPolicyConfig":
        """From distill/train.py's TrainConfig: its unset fields keep on-policy's defaults."""
        if not c.teacher:
            raise UserError("--method on-policy needs --teacher NAME|DIR|URL (the model that scores the student's tokens)")
        given = {k: getattr(c, k) for k in ("lmbda", "divergence", "beta", "temperature", "max_new_tokens", "samples_per_prompt",
                                           "learning_rate", "epochs", "max_length", "effective_batch", "per_device_batch", "logging_steps",
                                           "precision", "gradient_checkpointing")}
        given = {**_recipe_fields(c.student, c.models_file), **{k: v for k, v in given.items() if v is not None}}
        if c.on_policy_trainer is not None:
            given["trainer"] = c.on_policy_trainer
        return cls(student=c.student, teacher=c.teacher, traces=c.traces, out=c.out, resume=c.resume, save_steps=c.save_steps,
                   seed=c.seed, print_logs=c.print_logs, models_file=c.models_file,
                   collective_timeout_minutes=c.collective_timeout_minutes, **given)

    def resolved_beta(self) -> float:
        if self.divergence is not None and self.divergence not in DIVERGENCES:
            raise UserError(f"unknown divergence {self.divergence!r}: forward, reverse or jsd")
        if self.beta is not None:
            if not 0.0 <= self.beta <= 1.0:
                raise UserError(f"--beta {self.beta} is outside [0, 1] (0 forward KL, 0.5 JSD, 1 reverse KL)")
            if self.divergence not in (None, "jsd"):
                raise UserError(f"--beta goes with --divergence jsd, not {self.divergence} (which fixes beta at "
                                f"{DIVERGENCES[self.divergence]:g})")
            return self.beta
        return DIVERGENCES[self.divergence or "reverse"]

    def check(self) -> None:
        if not 0.0 <= self.lmbda <= 1.0:
            raise UserError(f"--lmbda {self.lmbda} is outside [0, 1] (the share of steps on the student's own samples)")
        if self.temperature <= 0:
            raise UserError(f"--temperature must be positive, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise UserError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.samples_per_prompt < 1:
            raise UserError(f"--samples-per-prompt must be at least 1, got {self.samples_per_prompt}")
        if self.trainer not in TRAINERS:
            raise UserError(f"--on-policy-trainer {self.trainer!r}: auto, distillation or gkd")
        if self.trainer == "distillation" and self.lmbda != 1.0:
            raise UserError(f"--on-policy-trainer distillation trains fully on-policy (lambda 1), not --lmbda "
                            f"{self.lmbda:g}: mixing in the traces' completions is GKD's (--on-policy-trainer gkd)")
        self.resolved_beta()


def local_trainer_name(trainer: str, *, lmbda: float, cuda: bool, cross_tokenizer: Optional[str]) -> str:
    """Which of TRL's trainers a local teacher trains with: GOLD for another tokenizer; DistillationTrainer where TRL
    recommends it (lambda 1) on a GPU; GKD for mixed lambda, and on a CPU, where neither has vLLM and GKD samples
    with its KV cache too (the demo's and the test suite's measured path). `trainer` names one instead."""
    if cross_tokenizer is not None:
        return "gold"
    if trainer != "auto":
        return trainer
    return "distillation" if cuda and lmbda == 1.0 else "gkd"


@dataclass
class Teacher:
    kind: str  # local | url
    source: str  # model id/folder, or the server's root URL
    api_key: Optional[str] = None


def distillation_teacher(name: str, registry) -> Teacher:
    if name.startswith(("http://", "https://")):
        return Teacher("url", _server_root(name))
    if name in registry.teachers:
        t = registry.teachers[name]
        if t.kind == "openai":
            return Teacher("url", _server_root(t.base_url), os.environ.get(t.api_key_env) if t.api_key_env else None)
        if t.kind == "llamacpp":
            raise UserError(f"teacher {name!r} is a GGUF file: serve it (r1-distill serve) and pass its URL as --teacher")
        return Teacher("local", t.model)
    path = Path(name)
    if path.exists() and not (path / "config.json").is_file():
        raise UserError(f"teacher {name} is not an HF model folder (no config.json)")
    return Teacher("local", name)


def _server_root(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class Compute:
    """What on-policy distillation spent: teacher forward passes (sequences scored), the tokens the
    teacher scored (prompt included) and the tokens the student sampled."""

    def __init__(self):
        self.lock = threading.Lock()
        self.teacher_forward_passes = 0
        self.teacher_tokens = 0
        self.student_sampled_tokens = 0
        self.teacher_batches = 0
        self.on_policy_steps = 0

    def as_dict(self) -> dict:
        return {"teacher_forward_passes": self.teacher_forward_passes, "teacher_tokens": self.teacher_tokens,
                "student_sampled_tokens": self.student_sampled_tokens, "on_policy_batches": self.on_policy_steps,
                "off_policy_batches": self.teacher_batches - self.on_policy_steps}


class ServerScorer:
    """The teacher's log-probability of each completion token, from an OpenAI-compatible server.

    Duck-types `trl.generation.vllm_client.VLLMClient.get_sequence_logprobs` (what
    ServerDistillationTrainer calls), top-1 only: the actual token's log-probability."""

    def __init__(self, root: str, compute: Compute, *, api_key: Optional[str] = None, workers: int = 4,
                 timeout: float = 300.0, announce: bool = True):
        import requests

        self.root, self.compute, self.workers, self.timeout = root, compute, workers, timeout
        self.announce = announce  # this process prints the notices (the main rank)
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.prompt_logprobs: Optional[bool] = None  # learned on the first call
        self.model = self._model_name()

    def _model_name(self) -> str:
        import requests

        try:
            reply = self.session.get(f"{self.root}/v1/models", timeout=30)
            reply.raise_for_status()
            return reply.json()["data"][0]["id"]
        except (requests.RequestException, KeyError, IndexError, ValueError) as exc:
            raise UserError(f"teacher server {self.root} did not answer /v1/models: {str(exc).splitlines()[0]}") from None

    def tokenizes_like(self, student_tok) -> Optional[bool]:
        """Whether the server's /tokenize (vLLM, llama-server, ours) gives the student's token ids for a probe
        text in R1's format; None when the server has no /tokenize."""
        probe = (f"{PROBE_USER}What is 12 + 7? Let me write $\\frac{{1}}{{2}}$, naïve café.{PROBE_ASSISTANT}<think>\n"
                 "First, 12 + 7 = 19.\n</think>\n\nThe answer is \\boxed{19}.")
        expected = student_tok(probe, add_special_tokens=False)["input_ids"]
        # llama-server answers 200 with no tokens to a body without `content`: only a non-empty list counts
        for body in ({"model": self.model, "prompt": probe, "add_special_tokens": False},  # vLLM, ours
                     {"content": probe, "add_special": False}):  # llama-server
            try:
                reply = self.session.post(f"{self.root}/tokenize", json=body, timeout=30)
            except Exception:  # unreachable
                return None
            if reply.status_code in (401, 403):
                raise UserError(f"teacher server {self.root} refused /tokenize with HTTP {reply.status_code}: "
                                "check the teacher's API key")
            try:
                tokens = reply.json().get("tokens") if reply.status_code == 200 else None
            except (ValueError, AttributeError):  # not JSON, or not an object
                tokens = None
            if isinstance(tokens, list) and tokens and all(isinstance(t, int) for t in tokens):
                return tokens == list(expected)
        return None

    def _post(self, payload: dict, *, refused_ok: bool = False) -> Optional[dict]:
        """POST /v1/completions; an HTTP error raises, or gives None with `refused_ok`."""
        reply = self.session.post(f"{self.root}/v1/completions", json=payload, timeout=self.timeout)
        if reply.status_code >= 400:
            if refused_ok:
                return None
            raise RuntimeError(f"teacher server {self.root}: HTTP {reply.status_code}: {reply.text[:300]}")
        return reply.json()

    def _vllm(self, sequences, prompt_lengths, temperature):
        """vLLM's prompt_logprobs: one request for the batch; None where the server has no such field."""
        payload = {"model": self.model, "prompt": sequences, "max_tokens": 1, "temperature": temperature,
                   "prompt_logprobs": 1}
        reply = self._post(payload, refused_ok=True)
        if reply is None:
            return None
        choices = reply.get("choices") or []
        if len(choices) != len(sequences) or any(c.get("prompt_logprobs") is None for c in choices):
            return None
        out = []
        for choice, seq, start in zip(choices, sequences, prompt_lengths):
            row = []
            for pos in range(start, len(seq)):
                entry = (choice["prompt_logprobs"][pos] or {}).get(str(seq[pos]))
                row.append(-math.inf if entry is None else entry["logprob"])
            out.append(row)
        return out

    def _forced(self, prefix: list[int], token: int) -> float:
        choice = self._post({"model": self.model, "prompt": prefix, "max_tokens": 1, "temperature": 0,
                             "logprobs": 1, "logit_bias": {str(token): 100}})["choices"][0]
        logprobs = choice.get("logprobs") or {}
        values = logprobs.get("token_logprobs") or []
        if not values:
            raise RuntimeError(f"teacher server {self.root} returned no logprobs: it cannot score the student's tokens")
        return float(values[0])

    def get_sequence_logprobs(self, sequences, prompt_lengths, top_logprobs=1, temperature=1.0, **_):
        if top_logprobs != 1:
            raise ValueError("the URL teacher scores the sampled token only (top-1)")
        rows = None
        if self.prompt_logprobs is not False:
            first = self.prompt_logprobs is None
            rows = self._vllm(sequences, prompt_lengths, temperature)
            self.prompt_logprobs = rows is not None
            if first and rows is not None and self.announce:
                print(VLLM_PREFIX_CACHING_NOTICE.format(root=self.root), flush=True)
        if rows is None:
            jobs = [(i, pos) for i, (seq, start) in enumerate(zip(sequences, prompt_lengths))
                    for pos in range(start, len(seq))]
            with ThreadPoolExecutor(self.workers) as pool:
                values = list(pool.map(lambda job: self._forced(sequences[job[0]][:job[1]], sequences[job[0]][job[1]]),
                                        jobs))
            rows = [[] for _ in sequences]
            for (i, _), value in zip(jobs, values):
                rows[i].append(value)
        with self.compute.lock:
            self.compute.teacher_forward_passes += len(sequences)
            self.compute.teacher_tokens += sum(len(s) for s in sequences)
            self.compute.student_sampled_tokens += sum(len(s) - p for s, p in zip(sequences, prompt_lengths))
            self.compute.on_policy_steps += 1
            self.compute.teacher_batches += 1
        logprobs = [[[v] for v in row] for row in rows]
        token_ids = [[[t] for t in seq[p:]] for seq, p in zip(sequences, prompt_lengths)]
        # top-1 of the sampled token: the scored tokens are the actual ones
        return {"logprobs": logprobs, "logprob_token_ids": token_ids, "actual_logprobs": logprobs,
                "actual_token_ids": token_ids}


def _teacher_tokenizer_differs(student_tok, teacher_source: str, spec, registry) -> tuple[Optional[str], bool]:
    """(None when the teacher tokenizes as the student does (after the same R1 preparation), else how they
    differ; whether the teacher's tokenizer is a fast one)."""
    from transformers import AutoConfig, AutoTokenizer

    from r1_distill.chat_format import prepare_tokenizer

    try:
        teacher_tok = AutoTokenizer.from_pretrained(teacher_source)
        teacher_config = AutoConfig.from_pretrained(teacher_source)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the teacher from {teacher_source}: {str(exc).splitlines()[0]}") from None
    try:
        teacher_tok, _ = prepare_tokenizer(teacher_tok, teacher_config, spec, registry)
    except UserError:
        pass  # compared as it is
    student_vocab, teacher_vocab = student_tok.get_vocab(), teacher_tok.get_vocab()
    if student_vocab == teacher_vocab:
        return None, teacher_tok.is_fast
    differ = len(set(student_vocab.items()) ^ set(teacher_vocab.items()))
    return f"{len(teacher_vocab)} vs {len(student_vocab)} tokens, {differ} entries differ", teacher_tok.is_fast


def _beta_name(beta: float) -> str:
    return {0.0: "forward KL", 1.0: "reverse KL", 0.5: "JSD"}.get(beta, f"generalized JSD (beta {beta:g})")


def _divergence_name(beta: float, cross_tokenizer: bool) -> str:
    return "ULD (cross-tokenizer)" if cross_tokenizer else _beta_name(beta)


@dataclass
class OnPolicyRun:
    """An on-policy run's settings once the teacher, the student, the launch and the hardware are resolved."""

    config: OnPolicyConfig
    teacher: Teacher
    beta: float
    launch: object
    cuda: bool
    base: str
    records: list
    tokenizer: object
    model_config: object
    spec: object
    plan: object
    cross_tokenizer: Optional[str]  # the teacher's tokenizer when it is not the student's (GOLD)
    teacher_fast: bool
    batch: BatchPlan
    precision: str
    checkpointing: bool

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"


def train_on_policy(config: OnPolicyConfig) -> dict:
    import torch

    from r1_distill.chat_format import weight_rows
    from r1_distill.registry import read_template

    run = _resolve_run(config)
    compute = Compute()
    # Every TRL config is made before any from_pretrained, and `args` stays referenced until the trainer holds it:
    # under DeepSpeed ZeRO-3 the config's post-init registers the DeepSpeed config that makes from_pretrained
    # partition the weights as they load (zero.Init), instead of each rank holding the whole model.
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # chosen on purpose: TRL's on-policy trainers live there
    build = _server_trainer
    if run.teacher.kind == "local":
        name = local_trainer_name(config.trainer, lmbda=config.lmbda, cuda=run.cuda, cross_tokenizer=run.cross_tokenizer)
        build = _distillation_trainer if name == "distillation" else _local_trainer
    trainer, model, prompts, too_long = build(run, compute)
    _sample_with_cache(trainer)
    # embedding rows past the tokenizer (Qwen pads 151,665 tokens to 151,936 rows) are not tokens: an
    # untrained row sampled on-policy has no text (GOLD's alignment fails on it), is beyond a teacher
    # server's vocabulary, and teaches nothing. Every trainer here samples with its generation_config.
    tokenizer = run.tokenizer
    rows = weight_rows(model.get_input_embeddings().weight)
    if rows > len(tokenizer):
        trainer.generation_config.suppress_tokens = list(range(len(tokenizer), rows))
    result, resume_from = run_trainer(trainer, run.out / "checkpoints", resume=config.resume, print_logs=config.print_logs)
    tokenizer.chat_template = read_template(run.spec.template)
    tokenizer.padding_side = "right"
    save_trained_model(trainer, tokenizer, run.out, source=run.base, save_dtype=torch.bfloat16 if run.bf16 else None)
    if not trainer.is_world_process_zero():
        return {}
    r1_generation_config(tokenizer).save_pretrained(run.out)
    metrics = _metrics(run, trainer, result, resume_from, compute, prompts=prompts, too_long=too_long)
    write_run_record(run.out, "train", config=config, history=trainer.state.log_history,
                     inputs={"base": run.base, "teacher": run.teacher.source, "traces": config.traces,
                             "traces_digest": file_digest(config.traces)},
                     outputs={"model": ".", "loss_plot": "loss.png"}, metrics=metrics,
                     card=_model_card(config, run.base, metrics))
    return metrics


def _resolve_run(config: OnPolicyConfig) -> OnPolicyRun:
    import torch

    from r1_distill.distill.distributed import (current_launch, refuse_launches_that_cannot_run, resolve_precision,
                                                trainer_checkpointing)
    from r1_distill.distill.train import TrainConfig, prepared_tokenizer, resolve_student
    from r1_distill.registry import load_registry
    from r1_distill.traces import read_traces

    config.check()
    beta = config.resolved_beta()
    registry = load_registry(config.models_file)
    teacher = distillation_teacher(config.teacher, registry)
    if teacher.kind == "url":
        _check_url_teacher_options(config, beta)
        if config.trainer != "auto":
            raise UserError(f"--on-policy-trainer {config.trainer} is for a local teacher: a URL teacher trains with "
                            "TRL's ServerDistillationTrainer")
    # the launch is read from the environment: PartialState() here would make the process group with torch's
    # 10-minute timeout, and the training arguments' ddp_timeout would then be ignored
    launch, cuda = current_launch(), torch.cuda.is_available()
    refuse_launches_that_cannot_run("train", launch, cuda=cuda)
    student, base, _recipe = resolve_student(TrainConfig(student=config.student, traces=config.traces, out=config.out,
                                                         models_file=config.models_file))
    records = [r for r in read_traces(config.traces) if r.kept is not False]
    if not records:
        raise UserError(f"no kept traces in {config.traces}: on-policy distillation takes its prompts from them")
    tokenizer, model_config, spec, plan = prepared_tokenizer(base, student, registry)
    if launch.main:
        _warn_short_rollouts(records, tokenizer, config.max_new_tokens)
    records = [r for r in records for _ in range(config.samples_per_prompt)]  # each prompt's rollouts
    cross_tokenizer, teacher_fast = None, True
    if teacher.kind == "local":
        cross_tokenizer, teacher_fast = _teacher_tokenizer_differs(tokenizer, teacher.source, spec, registry)
    batch = BatchPlan.of(effective=config.effective_batch, per_device=config.per_device_batch, world=launch.world)
    run = OnPolicyRun(config=config, teacher=teacher, beta=beta, launch=launch, cuda=cuda, base=base, records=records,
                      tokenizer=tokenizer, model_config=model_config, spec=spec, plan=plan,
                      cross_tokenizer=cross_tokenizer, teacher_fast=teacher_fast, batch=batch,
                      precision=resolve_precision(config.precision, cuda),
                      checkpointing=trainer_checkpointing(config.gradient_checkpointing, cuda=cuda, launch=launch))
    if cross_tokenizer is not None:
        _check_cross_tokenizer_options(run)
        if config.trainer != "auto":
            raise UserError(f"--on-policy-trainer {config.trainer}: the teacher {teacher.source} has another tokenizer "
                            f"({cross_tokenizer}), which only TRL's GOLD trainer distills; leave it at auto")
    return run


def median_reasoning_tokens(records, tokenizer, *, at_most: int = 256) -> Optional[int]:
    """The median length of the traces' reasoning in the student's tokens (over an evenly spaced sample of
    `at_most`), the count the record carries where it has one; None without reasoning."""
    import statistics

    step = max(1, len(records) // at_most)
    lengths = [r.reasoning_tokens if r.reasoning_tokens else len(tokenizer(r.reasoning, add_special_tokens=False)["input_ids"])
               for r in records[::step] if r.reasoning]
    return int(statistics.median(lengths)) if lengths else None


def _warn_short_rollouts(records, tokenizer, max_new_tokens: int) -> None:
    median = median_reasoning_tokens(records, tokenizer)
    if median is not None and max_new_tokens < median:
        print(f"warning: --max-new-tokens {max_new_tokens} is below the traces' median reasoning length ({median} "
              "tokens): most of the student's rollouts will be cut before </think>, and the teacher never scores "
              "how they end; raise --max-new-tokens", flush=True)


def _check_cross_tokenizer_options(run: OnPolicyRun) -> None:
    config, batch = run.config, run.batch.per_device * run.batch.accumulation
    if config.divergence is not None or config.beta is not None:
        raise UserError(f"the teacher {run.teacher.source} has another tokenizer than the student ({run.cross_tokenizer}): "
                        "it is distilled with TRL's cross-tokenizer loss (ULD), which has no --divergence or "
                        "--beta; leave them out, or use a teacher of the student's family")
    if config.max_new_tokens >= config.max_length:
        raise UserError(f"--max-new-tokens {config.max_new_tokens} leaves no room for the prompt in "
                        f"--max-length {config.max_length}")
    if len(run.records) < batch:
        # GOLD samples whole batches of per-device x accumulation prompts and drops a smaller rest
        raise UserError(f"{len(run.records)} kept traces are fewer than one batch of {batch} "
                        "(--per-device-batch x accumulation) for TRL's cross-tokenizer trainer: lower "
                        "--effective-batch or give more traces")


def _shared_arguments(run: OnPolicyRun) -> dict:
    config = run.config
    return dict(**shared_arguments(checkpoints=run.out / "checkpoints", bf16=run.bf16, cuda=run.cuda, seed=config.seed,
                                   collective_timeout_minutes=config.collective_timeout_minutes,
                                   checkpointing=run.checkpointing, save_steps=config.save_steps),
                num_train_epochs=config.epochs, learning_rate=config.learning_rate,
                per_device_train_batch_size=run.batch.per_device, gradient_accumulation_steps=run.batch.accumulation,
                lr_scheduler_type="constant", warmup_steps=0, temperature=config.temperature, beta=run.beta)


def _student_dtype(run: OnPolicyRun):
    from r1_distill.distill.distributed import weights_dtype

    return weights_dtype(run.precision, full=True, launch=run.launch)  # fp32 masters where nothing else keeps them


def _local_trainer(run: OnPolicyRun, compute: Compute):
    """TRL's GKDTrainer (the student's tokenizer) or GOLDTrainer (another one) with a local teacher.
    Returns (trainer, student model, prompts, traces dropped as too long)."""
    from r1_distill.distill.train import build_dataset
    from r1_distill.registry import read_template

    config, tokenizer = run.config, run.tokenizer
    tokenizer.chat_template = read_template(run.spec.train_template)
    dataset, too_long, _ = build_dataset(run.records, tokenizer, config.max_length)
    if dataset is None:
        raise UserError(f"all {too_long} traces are longer than --max-length {config.max_length} tokens")
    common = dict(**_shared_arguments(run), lmbda=config.lmbda, max_length=config.max_length, disable_dropout=True,
                  logging_steps=run.batch.logging_steps(len(dataset), config.epochs, config.logging_steps))
    if run.cross_tokenizer is None:
        from trl.experimental.gkd import GKDConfig as LocalConfig, GKDTrainer as LocalTrainer

        args = LocalConfig(**common, max_new_tokens=config.max_new_tokens)
    else:
        from trl.experimental.gold import GOLDConfig as LocalConfig, GOLDTrainer as LocalTrainer

        batch = run.batch.per_device * run.batch.accumulation
        if len(dataset) % batch and run.launch.main:
            print(f"warning: {len(dataset) % batch} of {len(dataset)} traces do not fill a batch of {batch} and are "
                  "left out each epoch (TRL's cross-tokenizer trainer samples whole batches)", flush=True)
        args = LocalConfig(**common, max_completion_length=config.max_new_tokens, use_uld_loss=True,
                           teacher_tokenizer_name_or_path=run.teacher.source,
                           # aligning by text needs byte offsets, which only fast tokenizers give
                           use_extended_uld=tokenizer.is_fast and run.teacher_fast)
    model = _load_student(run.base, run.model_config, _student_dtype(run), run.plan, tokenizer)
    teacher_model = _load_teacher(run)
    try:
        trainer = LocalTrainer(model=model, teacher_model=teacher_model, args=args, train_dataset=dataset,
                               processing_class=tokenizer)
    except ValueError as exc:  # e.g. the embedding matrices differ in size
        raise UserError(f"TRL's {LocalTrainer.__name__} refused the teacher: {str(exc).splitlines()[0]}") from None
    _count_local(trainer, compute)
    return trainer, model, len(dataset), too_long


def _distillation_trainer(run: OnPolicyRun, compute: Compute):
    """TRL's DistillationTrainer with a local teacher of the student's tokenizer: fully on-policy, the divergence
    computed chunk by chunk from both models' last hidden states; vLLM generation (colocated) where vLLM is
    installed on a GPU. Returns (trainer, student model, prompts, traces dropped as too long)."""
    import importlib.util

    from trl import DistillationConfig, DistillationTrainer

    config, tokenizer = run.config, run.tokenizer
    dataset = _prompt_dataset(run)
    use_vllm = run.cuda and importlib.util.find_spec("vllm") is not None
    args = DistillationConfig(**_shared_arguments(run), max_completion_length=config.max_new_tokens, disable_dropout=True,
                              use_vllm=use_vllm, vllm_mode="colocate",
                              logging_steps=run.batch.logging_steps(len(dataset), config.epochs, config.logging_steps))
    model = _load_student(run.base, run.model_config, _student_dtype(run), run.plan, tokenizer)
    teacher_model = _load_teacher(run)
    _count_teacher(teacher_model.base_model, compute, on_policy=True)  # what DistillationTrainer runs the teacher through
    try:
        trainer = DistillationTrainer(model=model, teacher_model=teacher_model, args=args, train_dataset=dataset,
                                      processing_class=tokenizer)
    except ValueError as exc:  # e.g. the vocabularies differ in size
        raise UserError(f"TRL's DistillationTrainer refused the teacher: {str(exc).splitlines()[0]}") from None
    generate = trainer._generate

    def counted_generate(prompts):
        outputs = generate(prompts)  # prompt ids, completion ids (lists), ...
        with compute.lock:
            compute.student_sampled_tokens += sum(len(ids) for ids in outputs[1])
        return outputs

    trainer._generate = counted_generate
    return trainer, model, len(dataset), 0


def _prompt_dataset(run: OnPolicyRun):
    """The traces' prompts as conversations, for the trainers that sample from the prompt alone."""
    from datasets import Dataset

    from r1_distill.registry import read_template

    run.tokenizer.chat_template = read_template(run.spec.template)  # the generation prompt opens the thinking
    run.tokenizer.padding_side = "left"
    return Dataset.from_list([{"prompt": [{"role": "user", "content": r.prompt or r.problem}]} for r in run.records])


def _server_trainer(run: OnPolicyRun, compute: Compute):
    """TRL's ServerDistillationTrainer against a URL teacher, scored through ServerScorer."""
    from unittest import mock

    import trl.generation.vllm_client as vllm_client
    from trl.experimental.server_distillation import ServerDistillationConfig, ServerDistillationTrainer

    config, tokenizer = run.config, run.tokenizer
    dataset = _prompt_dataset(run)
    args = ServerDistillationConfig(**_shared_arguments(run), teacher_model_server_url=run.teacher.source, loss_top_k=1,
                                    max_completion_length=config.max_new_tokens, disable_dropout=True,
                                    logging_steps=run.batch.logging_steps(len(dataset), config.epochs, config.logging_steps))
    scorer = ServerScorer(run.teacher.source, compute, api_key=run.teacher.api_key, announce=run.launch.main)
    _check_server_tokenizer(scorer, tokenizer, run.teacher.source)
    model = _load_student(run.base, run.model_config, _student_dtype(run), run.plan, tokenizer)
    # the trainer builds TRL's VLLMClient (which needs vllm installed) as its teacher client: it gets ours
    with mock.patch.object(vllm_client, "VLLMClient", lambda *a, **k: scorer):
        trainer = ServerDistillationTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    assert trainer.teacher_client is scorer
    return trainer, model, len(dataset), 0


def _metrics(run: OnPolicyRun, trainer, result, resume_from, compute: Compute, *, prompts: int, too_long: int) -> dict:
    config = run.config
    return {"method": "on-policy", "trainer": type(trainer).__name__, "teacher": run.teacher.source,
            "teacher_kind": run.teacher.kind, "divergence": _divergence_name(run.beta, run.cross_tokenizer is not None),
            "beta": None if run.cross_tokenizer else run.beta, "lmbda": config.lmbda,
            "temperature": config.temperature, "max_new_tokens": config.max_new_tokens,
            "samples_per_prompt": config.samples_per_prompt, "learning_rate": config.learning_rate, "prompts": prompts,
            "dropped_too_long": too_long, **run_metrics(trainer, result, resume_from, run.launch),
            "precision": run.precision, "weights_dtype": str(_student_dtype(run)).removeprefix("torch."),
            "activation_checkpointing": run.checkpointing, "generation_use_cache": trainer.generation_config.use_cache,
            "generation_max_new_tokens": trainer.generation_config.max_new_tokens,
            "compute": compute.as_dict(), "cross_tokenizer": run.cross_tokenizer, "chat_format": run.plan.as_dict()}


def _check_url_teacher_options(config: OnPolicyConfig, beta: float) -> None:
    if beta != 1.0:
        raise UserError(f"a URL teacher returns the log-probability of the student's sampled tokens only: "
                        f"--divergence reverse (not {_beta_name(beta)}); a local teacher supports forward KL and JSD")
    if config.lmbda != 1.0:
        raise UserError("a URL teacher trains fully on-policy: --lmbda 1 (mixing in the traces' completions "
                        "needs a local teacher)")
    if config.temperature != 1.0:
        raise UserError(f"--temperature {config.temperature:g} with a URL teacher: a teacher server scores tokens at "
                        "temperature 1 (vLLM's prompt log-probabilities are the raw ones), so the student's tempered "
                        "samples would be compared with the wrong distribution; leave --temperature at 1, or use a "
                        "local teacher (which tempers both models alike)")


def _check_server_tokenizer(scorer: "ServerScorer", tokenizer, source: str) -> None:
    same = scorer.tokenizes_like(tokenizer)
    if same is False:
        raise UserError(f"the teacher server {source} tokenizes differently from the student: it would score "
                        "token ids that mean other text to it. A URL teacher needs the student's tokenizer; use a "
                        "teacher server of the student's family, or a local HF teacher (another tokenizer trains "
                        "with TRL's GOLD)")
    if same is None and scorer.announce:
        print(f"warning: the teacher server {source} has no /tokenize, so its tokenizer cannot be checked "
              "against the student's: a teacher of another family would give meaningless log-probabilities",
              flush=True)


def _load_student(base: str, model_config, dtype, plan, tokenizer):
    from transformers import AutoModelForCausalLM

    from r1_distill.chat_format import prepare_model

    model = AutoModelForCausalLM.from_pretrained(base, config=model_config, dtype=dtype)
    prepare_model(model, plan, tokenizer)
    return model


def _load_teacher(run: OnPolicyRun):
    import torch
    from transformers import AutoModelForCausalLM

    # the teacher is frozen: never updated, so bf16 loses nothing
    return AutoModelForCausalLM.from_pretrained(run.teacher.source, dtype=torch.bfloat16 if run.bf16 else torch.float32)


def _sample_with_cache(trainer) -> None:
    """Sampling keeps its KV cache. GKD turns it off whenever activation checkpointing is on, and each new
    token then recomputes the whole prefix; but TRL switches checkpointing off around generation
    (unwrap_model_for_generation), so the cache is safe there."""
    trainer.generation_config.use_cache = True
    kwargs = getattr(trainer, "generation_kwargs", None)
    if isinstance(kwargs, dict):  # the override transformers < 5 generates with
        kwargs["use_cache"] = True


def _count_local(trainer, compute: Compute) -> None:
    """Counts on the trainer instance (TRL's code unchanged): the teacher's forward passes through a hook,
    the student's samples around GKD's own generate_on_policy_outputs."""
    generate = trainer.generate_on_policy_outputs

    def counted_generate(model, inputs, generation_config):
        outputs = generate(model, inputs, generation_config)  # GKD: ids, mask, labels; GOLD adds the texts
        with compute.lock:
            compute.student_sampled_tokens += int((outputs[2] != -100).sum())
            compute.on_policy_steps += 1
        return outputs

    trainer.generate_on_policy_outputs = counted_generate
    _count_teacher(trainer.teacher_model, compute, on_policy=False)


def _count_teacher(module, compute: Compute, *, on_policy: bool) -> None:
    """Counts the teacher's forward passes through `module` (sequences, tokens, batches); with `on_policy`, every
    batch it scores is the student's own samples."""
    def on_teacher_forward(_module, _args, kwargs):
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids")
        with compute.lock:
            compute.teacher_forward_passes += int(ids.shape[0]) if ids is not None else 0
            compute.teacher_tokens += int(mask.sum()) if mask is not None else 0
            compute.teacher_batches += 1
            compute.on_policy_steps += int(on_policy)

    module.register_forward_pre_hook(on_teacher_forward, with_kwargs=True)


def _model_card(config: OnPolicyConfig, base: str, metrics: dict) -> str:
    loss = f"{metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}" if metrics["first_loss"] is not None else "n/a"
    c = metrics["compute"]
    return (f"---\nbase_model: {base}\ntags: [r1-distill, reasoning, distillation, on-policy]\n---\n\n"
            f"# {Path(config.out).name}\n\nOn-policy distilled from teacher `{metrics['teacher']}` with r1-distill "
            f"({metrics['trainer']}, {metrics['divergence']}, lambda {metrics['lmbda']:g}) on the prompts of "
            f"`{config.traces}`.\n\n| figure | value |\n|---|---|\n| prompts | {metrics['prompts']} |\n"
            f"| steps | {metrics['steps']} |\n| divergence (first -> last) | {loss} |\n"
            f"| teacher forward passes | {c['teacher_forward_passes']} |\n"
            f"| student tokens sampled | {c['student_sampled_tokens']} |\n\n"
            "The chat template forces `<think>\\n`: the model thinks first. "
            "Evaluation results are added by `r1-distill eval`.\n")
