"""`r1-distill grpo`: reinforcement learning with rule-based rewards, on TRL's GRPOTrainer.

The rewards are r1_distill.grading's checks (one implementation for filter, eval and RL): correctness
(math-verify against the reference answer; a code problem's tests in the sandbox), format (one
closed `<think>` block, then an answer), language consistency, and the repetition and length penalties. R1's settings are the defaults
where they apply: sampling temperature 1.0, KL coefficient (beta) 0.001. Generation runs on vLLM
when it is installed and a GPU is present (colocated, or a `trl vllm-serve` server with
--vllm-server URL), on transformers otherwise.

Prompts use the model's chat template (R1-Distill: the assistant turn opens with `<think>\\n`), or,
with `--template r1-zero`, R1-Zero's plain-text template for base models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from r1_distill.chat_format import format_spec, prepare_model, prepare_tokenizer
from r1_distill.distill.common import (lora_config, partitioned_at_load, run_metrics, run_trainer, save_trained_model,
                                      shared_arguments, write_run_record)
from r1_distill.distill.distributed import (COLLECTIVE_TIMEOUT_MINUTES, current_launch, refuse_launches_that_cannot_run,
                                            resolve_precision, trainer_checkpointing, weights_dtype)
from r1_distill.errors import UserError
from r1_distill.manifest import file_digest
from r1_distill.options import SANDBOX_HELP, internal, option
from r1_distill.registry import load_registry, read_template

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {prompt}. Assistant: <think>\n")

REWARDS = ("correctness", "format", "arithmetic", "language", "repetition", "length", "code")
SANDBOX_REWARDS = ("correctness", "code")  # the rewards that run code problems' tests


@dataclass
class GRPORunConfig:
    model: str = option(help="HF folder or hub id (a distilled student, or a base model with --template r1-zero).")
    prompts: str = option(help="JSONL, Parquet or hub dataset id with problems and reference answers.")
    out: str = option(help="Output model folder.")
    num_generations: int = option(8, help="Completions per prompt (the group G).")
    prompts_per_step: int = option(4, help="Prompts per optimizer step.")
    steps: int = option(100, help="Optimizer steps.")
    learning_rate: float = option(1e-6, flags=("--lr", "--learning-rate"), help="Learning rate.")
    beta: float = option(0.001, help="KL coefficient (R1: 0.001; 0 drops the reference model).")
    temperature: float = option(1.0, help="Sampling temperature of the completions.")
    top_p: float = option(1.0, help="Nucleus sampling of the completions.")
    max_completion_length: int = option(1024, help="Tokens per completion.")
    rewards: list[str] = option(default_factory=lambda: ["correctness", "format"], csv=True,
                                help="Comma-separated: correctness, format, arithmetic, language, repetition, length.")
    reward_weights: Optional[list[float]] = option(None, csv=True, help="Comma-separated, one per reward.")
    length_budget: Optional[int] = option(None, metavar="WORDS",
                                          help="length reward: completions over this many words score below 0.")
    language: str = option("Latin", help="language reward: the script the completions should be written in.")
    language_min_share: float = option(0.95, help="language reward: the share of letters in that script that passes.")
    repetition_ngram: int = option(8, help="repetition reward: the word n-gram whose repeats are counted.")
    repetition_scale: float = option(1.0, help="repetition reward: the penalty of a completion that only repeats "
                                     "(0 for fresh text).")
    template: str = option("chat", help="chat (the model's template) | r1-zero (plain text).")
    prompt_suffix: Optional[str] = option(None, help="Appended to each problem (default: models.yaml's).")
    method: str = option("full", help="full | lora")
    use_vllm: Optional[bool] = option(None, flags=("--use-vllm/--no-vllm",),
                                      help="Generate with vLLM (default: when installed, on a GPU).")
    vllm_server: Optional[str] = option(None, help="URL of `trl vllm-serve` (default: colocate on GPU).")
    vllm_max_model_length: Optional[int] = option(None, help="Colocated vLLM's context (default: longest prompt + "
                                                  "completion, not the model's 131k).")
    vllm_gpu_memory_utilization: float = option(0.3, help="Colocated vLLM's share of each GPU.")
    vllm_tensor_parallel_size: int = option(1, help="GPUs per colocated vLLM engine.")
    problem_field: str = option("problem", help="The prompts' problem column.")
    answer_field: str = option("answer", help="The prompts' reference answer column.")
    id_field: str = option("id", help="The prompts' id column.")
    split: str = option("train", help="Split of a hub dataset.")
    limit: Optional[int] = option(None, help="Only the first N prompts.")
    save_steps: int = option(50, help="Checkpoint every N steps.")
    resume: bool = option(False, help="Continue from the last checkpoint in OUT/checkpoints.")
    seed: int = option(0, help="Random seed.")
    print_logs: bool = internal(True)  # False: the progress bar only; the logs still go to log_history.json
    models_file: Optional[str] = internal(None)
    precision: Optional[str] = option(None, help="bf16 | fp32 (default: bf16 on a GPU, fp32 on a CPU).")
    collective_timeout_minutes: float = option(COLLECTIVE_TIMEOUT_MINUTES, flags=("--collective-timeout",),
                                               help="Minutes a worker waits for the others.")
    sandbox: str = option("local", metavar="SPEC", help=SANDBOX_HELP)


GENERATORS = {"vllm-colocate": "vLLM, colocated on the training GPUs", "vllm-server": "vLLM at the --vllm-server URL",
              "transformers": "transformers' generate (no vLLM: slow for long completions)"}


def choose_generator(config: GRPORunConfig, cuda: bool) -> str:
    """vllm-colocate, vllm-server or transformers: vLLM where asked for or available on a GPU; asking for it where
    it cannot run is an error, never a silent fall back to the much slower transformers generation."""
    import importlib.util

    wanted = config.use_vllm if config.use_vllm is not None else (bool(config.vllm_server) or None)
    have = importlib.util.find_spec("vllm") is not None
    if wanted is None:
        wanted = cuda and have
    if not wanted:
        return "transformers"
    if not have:
        raise UserError("vLLM is not installed in this environment, and GRPO's vLLM generation runs inside the trainer's "
                        "environment: pip install 'r1-distill[gpu]' (the tested vLLM/TRL set), or leave out "
                        "--use-vllm/--vllm-server to generate with transformers")
    if not cuda and not config.vllm_server:
        raise UserError("colocated vLLM needs a GPU: use --vllm-server URL (`trl vllm-serve`), or generate with "
                        "transformers (leave out --use-vllm)")
    return "vllm-server" if config.vllm_server else "vllm-colocate"


def build_reward_functions(names: list[str], *, length_budget: Optional[int] = None, sandbox: str = "local",
                           language: str = "Latin", language_min_share: float = 0.95, repetition_ngram: int = 8,
                           repetition_scale: float = 1.0) -> list:
    """The checks of r1_distill.grading as TRL reward functions (graded on all cores, each under its limit;
    code tests in the sandbox `sandbox` names), each with its parameters."""
    from r1_distill.grading import reward_function

    if "length" in names and not length_budget:
        raise UserError("the length reward needs its budget: --length-budget WORDS (completions longer score "
                        "below 0, -1 at twice the budget)")
    parameters = {"length": {"max_words": length_budget},
                  "language": {"expected": language, "min_share": language_min_share},
                  "repetition": {"n": repetition_ngram, "scale": repetition_scale},
                  **{name: {"sandbox": sandbox} for name in SANDBOX_REWARDS}}
    functions = []
    for name in names:
        if name not in REWARDS:
            raise UserError(f"unknown reward {name!r}: choose from {', '.join(REWARDS)}")
        functions.append(reward_function(name, **parameters.get(name, {})))
    return functions


def build_prompt_dataset(config: GRPORunConfig, suffix: str):
    from datasets import Dataset

    from r1_distill.prompts import load_prompts

    prompts = load_prompts(config.prompts, problem_field=config.problem_field, answer_field=config.answer_field,
                           id_field=config.id_field, split=config.split, limit=config.limit)
    missing = [p.id for p in prompts if p.answer is None]
    if missing:
        raise UserError(f"{len(missing)} prompts have no reference answer (field '{config.answer_field}', first: "
                        f"{missing[0]}): GRPO's correctness reward needs one; pass --answer-field NAME")
    from r1_distill.prompts import CODE_PROMPT_SUFFIX

    rows = []
    for p in prompts:
        instruction = CODE_PROMPT_SUFFIX if p.kind == "code" and config.prompt_suffix is None else suffix
        text = f"{p.problem}\n{instruction}" if instruction else p.problem
        prompt = R1_ZERO_TEMPLATE.format(prompt=text) if config.template == "r1-zero" else [{"role": "user", "content": text}]
        rows.append({"prompt": prompt, "answer": p.answer, "id": p.id})
    return Dataset.from_list(rows)


def _plot_rewards(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    if not keys:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        points = [(h["step"], h[key]) for h in history if key in h]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=key.split("/")[1])
    ax.set(title="GRPO rewards (mean per step)", xlabel="step", ylabel="reward")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def grpo(config: GRPORunConfig) -> dict:
    from r1_distill.grading.remote import parse_spec

    parse_spec(config.sandbox)  # a bad --sandbox fails before torch is even imported
    import torch
    from trl import GRPOTrainer

    _check_options(config)
    rewards, dataset, tokenizer, plan = _prepare_inputs(config)
    launch, cuda = current_launch(), torch.cuda.is_available()
    refuse_launches_that_cannot_run("grpo", launch, cuda=cuda)
    generator = choose_generator(config, cuda)
    if launch.main and config.print_logs:
        print(f"generating with {GENERATORS[generator]}", flush=True)
    precision = resolve_precision(config.precision, cuda)
    out = Path(config.out)
    args = _grpo_arguments(config, generator, _longest_prompt(tokenizer, dataset), precision=precision, cuda=cuda,
                           launch=launch)  # before the model: see train._sft_arguments
    model = _load_policy(config, plan, tokenizer, precision, launch, vllm=generator != "transformers")
    zero3_load = partitioned_at_load(model)
    peft_config = lora_config(model, plan, r=16, alpha=32) if config.method == "lora" else None
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=peft_config)
    result, resume_from = run_trainer(trainer, out / "checkpoints", resume=config.resume, print_logs=config.print_logs)

    def load_base():
        from transformers import AutoModelForCausalLM

        fresh = AutoModelForCausalLM.from_pretrained(config.model, dtype="auto")
        if plan is not None:
            prepare_model(fresh, plan, tokenizer)
        return fresh

    save_trained_model(trainer, tokenizer, out, source=config.model, load_base=load_base if peft_config else None,
                       save_dtype=torch.bfloat16 if precision == "bf16" else None)
    if not trainer.is_world_process_zero():
        return {}
    history = trainer.state.log_history
    metrics = {**run_metrics(trainer, result, resume_from, launch), "prompts": len(dataset),
               "rewards": reward_summary(history), "use_vllm": generator != "transformers", "generator": generator,
               "precision": precision, "zero3_partitioned_at_load": zero3_load,
               "chat_format": plan.as_dict() if plan else None}
    prompts_digest = file_digest(config.prompts) if Path(config.prompts).exists() else None
    write_run_record(out, "grpo", config=config, history=history,
                     inputs={"model": config.model, "prompts": config.prompts, "prompts_digest": prompts_digest},
                     outputs={"model": ".", "rewards_plot": "rewards.png"}, metrics=metrics,
                     card=_model_card(config, metrics), plot=_plot_rewards, plot_name="rewards.png")
    return metrics


def _check_options(config: GRPORunConfig) -> None:
    if config.template not in ("chat", "r1-zero"):
        raise UserError(f"unknown template {config.template!r}: chat or r1-zero")
    if config.steps < 1 or config.num_generations < 2 or config.prompts_per_step < 1:
        raise UserError("--steps must be at least 1 and --num-generations at least 2 (GRPO compares a group)")
    if config.reward_weights is not None and len(config.reward_weights) != len(config.rewards):
        raise UserError(f"--reward-weights has {len(config.reward_weights)} values for {len(config.rewards)} rewards")
    if config.method not in ("full", "lora"):
        raise UserError(f"unknown method {config.method!r}: full or lora")


def _prepare_inputs(config: GRPORunConfig):
    """The reward functions, the prompt dataset, and the model's tokenizer in R1's format (with its plan)."""
    from transformers import AutoConfig, AutoTokenizer

    from r1_distill.grading.code import require_sandbox_for

    registry = load_registry(config.models_file)
    suffix = registry.defaults.sampling.prompt_suffix if config.prompt_suffix is None else config.prompt_suffix
    rewards = build_reward_functions(config.rewards, length_budget=config.length_budget, sandbox=config.sandbox,
                                     language=config.language, language_min_share=config.language_min_share,
                                     repetition_ngram=config.repetition_ngram, repetition_scale=config.repetition_scale)
    dataset = build_prompt_dataset(config, suffix)
    if any(name in SANDBOX_REWARDS for name in config.rewards):
        require_sandbox_for(dataset["answer"], config.sandbox)
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        model_config = AutoConfig.from_pretrained(config.model)
    except OSError as exc:
        raise UserError(f"cannot load a tokenizer from {config.model}: {str(exc).splitlines()[0]}") from None
    plan = None
    if config.template == "chat":
        # a model without R1's format (a hub base) gets it as `train` gives it, so rewards see one format
        had_template = tokenizer.chat_template
        tokenizer, plan = prepare_tokenizer(tokenizer, model_config, format_spec(registry, "r1-distill"), registry)
        if plan.changed_ids or not had_template:
            tokenizer.chat_template = read_template("r1-distill")
    return rewards, dataset, tokenizer, plan


def _longest_prompt(tokenizer, dataset) -> int:
    return max(len(tokenizer(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                             if isinstance(p, list) else p, add_special_tokens=False)["input_ids"])
               for p in dataset["prompt"])


def _grpo_arguments(config: GRPORunConfig, generator: str, longest_prompt: int, *, precision: str, cuda: bool, launch):
    """TRL's GRPOConfig: each step one group of completions per prompt, R1's settings where they apply."""
    from trl import GRPOConfig

    return GRPOConfig(
        **shared_arguments(checkpoints=Path(config.out) / "checkpoints", bf16=precision == "bf16", cuda=cuda,
                           seed=config.seed, collective_timeout_minutes=config.collective_timeout_minutes,
                           checkpointing=trainer_checkpointing(None, cuda=cuda, launch=launch),
                           save_steps=config.save_steps),
        max_steps=config.steps, learning_rate=config.learning_rate, beta=config.beta,
        num_generations=config.num_generations, per_device_train_batch_size=config.num_generations * config.prompts_per_step,
        gradient_accumulation_steps=1, steps_per_generation=1, temperature=config.temperature, top_p=config.top_p,
        max_completion_length=config.max_completion_length, reward_weights=config.reward_weights, logging_steps=1,
        use_vllm=generator != "transformers", vllm_mode="server" if config.vllm_server else "colocate",
        **({"vllm_server_base_url": config.vllm_server} if config.vllm_server else {}),
        vllm_max_model_length=config.vllm_max_model_length or longest_prompt + config.max_completion_length,
        vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=config.vllm_tensor_parallel_size, lr_scheduler_type="constant", warmup_steps=0,
    )


def _load_policy(config: GRPORunConfig, plan, tokenizer, precision: str, launch, *, vllm: bool):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        config.model, dtype=weights_dtype(precision, full=config.method == "full", launch=launch))
    if plan is not None:
        prepare_model(model, plan, tokenizer)
        if vllm and plan.embedding_rows:
            # vLLM loads the weights from config.model's folder: its embeddings would be the unprepared size
            raise UserError(f"{config.model} needs {plan.embedding_rows[1] - plan.embedding_rows[0]} new embedding rows "
                            "for R1's tokens, which vLLM's copy of the model would not have: distill it with "
                            "`r1-distill train` first (that saves them), or generate with transformers (--no-vllm)")
    return model


def reward_summary(history: list[dict]) -> dict:
    """Each reward's mean at the first and last step and over the first and last quarter of the steps."""
    means = {}
    for key in sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")}):
        values = [h[key] for h in history if key in h]
        quarter = max(1, len(values) // 4)
        means[key.split("/")[1]] = {"first": values[0], "last": values[-1],
                                    "first_quarter": sum(values[:quarter]) / quarter,
                                    "last_quarter": sum(values[-quarter:]) / quarter}
    return means


def _model_card(config: GRPORunConfig, metrics: dict) -> str:
    rewards = "\n".join(f"| {name} | {r['first_quarter']:.3f} | {r['last_quarter']:.3f} |"
                        for name, r in metrics["rewards"].items())
    return f"""---
base_model: {config.model}
tags: [r1-distill, grpo, reasoning]
---
# GRPO of {Path(config.model).name}

Reinforced with GRPO (TRL's GRPOTrainer) and r1-distill's rule-based rewards from `{config.model}` on
`{config.prompts}`: {metrics['steps']} steps of {config.prompts_per_step} prompts x {config.num_generations}
completions (temperature {config.temperature}, up to {config.max_completion_length} tokens), learning rate
{config.learning_rate:g}, KL coefficient {config.beta:g}, {config.method} fine-tuning, {metrics['precision']},
completions from {GENERATORS[metrics['generator']]}.

| reward | mean, first quarter of steps | mean, last quarter |
|---|---|---|
{rewards}

Reward curves: `rewards.png`; every logged step: `log_history.json`; how it was made: `manifest.json`.
Serve it: `r1-distill export --gguf --model . --out gguf`, then `r1-distill serve --model gguf/<file>.gguf`.
"""


