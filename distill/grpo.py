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

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from r1_distill.errors import UserError
from r1_distill.files import write_text_atomic
from r1_distill.manifest import file_digest, write_manifest

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
    model: str  # HF folder or hub id
    prompts: str  # JSONL, Parquet or hub dataset id with problem and answer fields
    out: str
    num_generations: int = 8
    prompts_per_step: int = 4
    steps: int = 100
    learning_rate: float = 1e-6
    beta: float = 0.001  # R1's KL coefficient
    temperature: float = 1.0
    top_p: float = 1.0
    max_completion_length: int = 1024
    rewards: list[str] = field(default_factory=lambda: ["correctness", "format"])
    reward_weights: Optional[list[float]] = None
    max_completion_tokens_penalty: Optional[int] = None  # length reward: tokens over this are penalised
    template: str = "chat"  # chat | r1-zero
    prompt_suffix: Optional[str] = None  # default: models.yaml's (the R1 evaluation instruction)
    method: str = "full"  # full | lora
    use_vllm: Optional[bool] = None  # default: when vllm is installed and a GPU is present
    vllm_server: Optional[str] = None  # URL of `trl vllm-serve`; default: colocate
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = "id"
    split: str = "train"
    limit: Optional[int] = None
    save_steps: int = 50
    resume: bool = False
    seed: int = 0
    print_logs: bool = True  # False: the progress bar only; the logs still go to log_history.json
    models_file: Optional[str] = None
    sandbox: str = "local"  # where code tests run: local (bubblewrap), piston:URL or e2b (grading.remote)


def build_reward_functions(names: list[str], *, max_tokens: Optional[int] = None, sandbox: str = "local") -> list:
    """The checks of r1_distill.grading as TRL reward functions (graded on all cores, each under its limit;
    code tests in the sandbox `sandbox` names)."""
    from r1_distill.grading import reward_function

    functions = []
    for name in names:
        if name not in REWARDS:
            raise UserError(f"unknown reward {name!r}: choose from {', '.join(REWARDS)}")
        options = {"max_words": max_tokens} if name == "length" else {"sandbox": sandbox} if name in SANDBOX_REWARDS else {}
        functions.append(reward_function(name, **options))
    return functions


def build_prompt_dataset(config: GRPORunConfig, suffix: str):
    from datasets import Dataset

    from r1_distill.teacher.prompts import load_prompts

    prompts = load_prompts(config.prompts, problem_field=config.problem_field, answer_field=config.answer_field,
                           id_field=config.id_field, split=config.split, limit=config.limit)
    missing = [p.id for p in prompts if p.answer is None]
    if missing:
        raise UserError(f"{len(missing)} prompts have no reference answer (field '{config.answer_field}', first: "
                        f"{missing[0]}): GRPO's correctness reward needs one; pass --answer-field NAME")
    from r1_distill.teacher.prompts import CODE_PROMPT_SUFFIX

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
    from r1_distill.grading.code import require_sandbox_for
    from r1_distill.grading.remote import parse_spec

    parse_spec(config.sandbox)  # a bad --sandbox fails before torch is even imported
    import importlib.util

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from r1_distill.chat_format import format_spec, prepare_model, prepare_tokenizer
    from r1_distill.distill.train import checkpointing_arg, lora_config, run_trainer, save_trained_model
    from r1_distill.registry import load_registry, read_template

    if config.template not in ("chat", "r1-zero"):
        raise UserError(f"unknown template {config.template!r}: chat or r1-zero")
    if config.steps < 1 or config.num_generations < 2 or config.prompts_per_step < 1:
        raise UserError("--steps must be at least 1 and --num-generations at least 2 (GRPO compares a group)")
    registry = load_registry(config.models_file)
    suffix = registry.defaults.sampling.prompt_suffix if config.prompt_suffix is None else config.prompt_suffix
    rewards = build_reward_functions(config.rewards, max_tokens=config.max_completion_tokens_penalty, sandbox=config.sandbox)
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
    cuda = torch.cuda.is_available()
    use_vllm = config.use_vllm if config.use_vllm is not None else (cuda and importlib.util.find_spec("vllm") is not None)
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.bfloat16 if cuda else torch.float32)
    if plan is not None:
        prepare_model(model, plan, tokenizer)
    peft_config = None
    if config.method == "lora":
        peft_config = lora_config(model, plan, r=16, alpha=32)
    elif config.method != "full":
        raise UserError(f"unknown method {config.method!r}: full or lora")

    out = Path(config.out)
    checkpoints = out / "checkpoints"
    args = GRPOConfig(
        output_dir=str(checkpoints), max_steps=config.steps, learning_rate=config.learning_rate, beta=config.beta,
        num_generations=config.num_generations, per_device_train_batch_size=config.num_generations * config.prompts_per_step,
        gradient_accumulation_steps=1, steps_per_generation=1, temperature=config.temperature, top_p=config.top_p,
        max_completion_length=config.max_completion_length, reward_weights=config.reward_weights,
        logging_steps=1, save_steps=config.save_steps, save_total_limit=2, bf16=cuda, use_cpu=not cuda,
        report_to="none", seed=config.seed, use_vllm=use_vllm,
        vllm_mode="server" if config.vllm_server else "colocate",
        **({"vllm_server_base_url": config.vllm_server} if config.vllm_server else {}),
        **checkpointing_arg(cuda), lr_scheduler_type="constant", warmup_steps=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=peft_config)
    result, resume_from = run_trainer(trainer, checkpoints, resume=config.resume, print_logs=config.print_logs)

    def load_base():
        fresh = AutoModelForCausalLM.from_pretrained(config.model, dtype="auto")
        if plan is not None:
            prepare_model(fresh, plan, tokenizer)
        return fresh

    save_trained_model(trainer, tokenizer, out, source=config.model, load_base=load_base if peft_config else None)
    if not trainer.is_world_process_zero():
        return {}
    history = trainer.state.log_history
    reward_means = {}
    for key in sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")}):
        values = [h[key] for h in history if key in h]
        name = key.split("/")[1]
        reward_means[name] = {"first": values[0], "last": values[-1],
                              "first_quarter": sum(values[: max(1, len(values) // 4)]) / max(1, len(values) // 4),
                              "last_quarter": sum(values[-max(1, len(values) // 4):]) / max(1, len(values) // 4)}
    metrics = {"steps": trainer.state.global_step, "prompts": len(dataset), "rewards": reward_means,
               "train_runtime_s": result.metrics.get("train_runtime"), "use_vllm": use_vllm,
               "resumed": resume_from is not None, "chat_format": plan.as_dict() if plan else None}
    write_text_atomic(out / "log_history.json", json.dumps(history, indent=1))
    _plot_rewards(history, out / "rewards.png")
    write_manifest(out, "grpo", config=config, inputs={"model": config.model, "prompts": config.prompts,
                                                       "prompts_digest": file_digest(config.prompts) if Path(config.prompts).exists() else None},
                   outputs={"model": ".", "rewards_plot": "rewards.png"}, metrics=metrics)
    return metrics

