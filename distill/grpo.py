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

from r1_distill.distill.distributed import (COLLECTIVE_TIMEOUT_MINUTES, current_launch, engine_of,
                                            refuse_launches_that_cannot_run, resolve_precision, trainer_checkpointing,
                                            weights_dtype)
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
    length_budget: Optional[int] = None  # length reward: words over this are penalised (-1 at twice it)
    template: str = "chat"  # chat | r1-zero
    prompt_suffix: Optional[str] = None  # default: models.yaml's (the R1 evaluation instruction)
    method: str = "full"  # full | lora
    use_vllm: Optional[bool] = None  # default: when vllm is installed and a GPU is present
    vllm_server: Optional[str] = None  # URL of `trl vllm-serve`; default: colocate
    # colocated vLLM: its context (default: the longest prompt + max_completion_length, not the model's 131k),
    # its share of the GPU, and GPUs per engine
    vllm_max_model_length: Optional[int] = None
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
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
    precision: Optional[str] = None  # bf16 | fp32; default: bf16 on a GPU, fp32 on a CPU
    collective_timeout_minutes: float = COLLECTIVE_TIMEOUT_MINUTES
    sandbox: str = "local"  # where code tests run: local (bubblewrap), piston:URL or e2b (grading.remote)


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


def build_reward_functions(names: list[str], *, length_budget: Optional[int] = None, sandbox: str = "local") -> list:
    """The checks of r1_distill.grading as TRL reward functions (graded on all cores, each under its limit;
    code tests in the sandbox `sandbox` names)."""
    from r1_distill.grading import reward_function

    functions = []
    for name in names:
        if name not in REWARDS:
            raise UserError(f"unknown reward {name!r}: choose from {', '.join(REWARDS)}")
        if name == "length" and not length_budget:
            raise UserError("the length reward needs its budget: --length-budget WORDS (completions longer score "
                            "below 0, -1 at twice the budget)")
        options = {"max_words": length_budget} if name == "length" else {"sandbox": sandbox} if name in SANDBOX_REWARDS else {}
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
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from r1_distill.chat_format import format_spec, prepare_model, prepare_tokenizer
    from r1_distill.distill.train import (checkpointing_arg, lora_config, partitioned_at_load, run_trainer,
                                          save_trained_model)
    from r1_distill.registry import load_registry, read_template

    if config.template not in ("chat", "r1-zero"):
        raise UserError(f"unknown template {config.template!r}: chat or r1-zero")
    if config.steps < 1 or config.num_generations < 2 or config.prompts_per_step < 1:
        raise UserError("--steps must be at least 1 and --num-generations at least 2 (GRPO compares a group)")
    registry = load_registry(config.models_file)
    suffix = registry.defaults.sampling.prompt_suffix if config.prompt_suffix is None else config.prompt_suffix
    rewards = build_reward_functions(config.rewards, length_budget=config.length_budget, sandbox=config.sandbox)
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
    launch = current_launch()
    cuda = torch.cuda.is_available()
    refuse_launches_that_cannot_run("grpo", launch, cuda=cuda)
    generator = choose_generator(config, cuda)
    use_vllm = generator != "transformers"
    if launch.main and config.print_logs:
        print(f"generating with {GENERATORS[generator]}", flush=True)
    precision = resolve_precision(config.precision, cuda)
    if config.method not in ("full", "lora"):
        raise UserError(f"unknown method {config.method!r}: full or lora")
    longest_prompt = max(len(tokenizer(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                                       if isinstance(p, list) else p, add_special_tokens=False)["input_ids"])
                         for p in dataset["prompt"])

    out = Path(config.out)
    checkpoints = out / "checkpoints"
    # The arguments come before the model: under ZeRO-3 they hold the DeepSpeed config that from_pretrained
    # reads to load each worker's share only (zero.Init), and they make the process group with their timeout.
    args = GRPOConfig(
        output_dir=str(checkpoints), max_steps=config.steps, learning_rate=config.learning_rate, beta=config.beta,
        num_generations=config.num_generations, per_device_train_batch_size=config.num_generations * config.prompts_per_step,
        gradient_accumulation_steps=1, steps_per_generation=1, temperature=config.temperature, top_p=config.top_p,
        max_completion_length=config.max_completion_length, reward_weights=config.reward_weights,
        logging_steps=1, save_steps=config.save_steps, save_total_limit=2, bf16=precision == "bf16", use_cpu=not cuda,
        report_to="none", seed=config.seed, use_vllm=use_vllm, ddp_timeout=int(config.collective_timeout_minutes * 60),
        vllm_mode="server" if config.vllm_server else "colocate",
        **({"vllm_server_base_url": config.vllm_server} if config.vllm_server else {}),
        vllm_max_model_length=config.vllm_max_model_length or longest_prompt + config.max_completion_length,
        vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=config.vllm_tensor_parallel_size,
        **checkpointing_arg(trainer_checkpointing(None, cuda=cuda, launch=launch)), lr_scheduler_type="constant", warmup_steps=0,
    )
    model = AutoModelForCausalLM.from_pretrained(
        config.model, dtype=weights_dtype(precision, full=config.method == "full", launch=launch))
    zero3_load = partitioned_at_load(model)
    if plan is not None:
        prepare_model(model, plan, tokenizer)
        if use_vllm and plan.embedding_rows:
            # vLLM loads the weights from config.model's folder: its embeddings would be the unprepared size
            raise UserError(f"{config.model} needs {plan.embedding_rows[1] - plan.embedding_rows[0]} new embedding rows "
                            "for R1's tokens, which vLLM's copy of the model would not have: distill it with "
                            "`r1-distill train` first (that saves them), or generate with transformers (--no-vllm)")
    peft_config = lora_config(model, plan, r=16, alpha=32) if config.method == "lora" else None
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=peft_config)
    result, resume_from = run_trainer(trainer, checkpoints, resume=config.resume, print_logs=config.print_logs)

    def load_base():
        fresh = AutoModelForCausalLM.from_pretrained(config.model, dtype="auto")
        if plan is not None:
            prepare_model(fresh, plan, tokenizer)
        return fresh

    save_trained_model(trainer, tokenizer, out, source=config.model, load_base=load_base if peft_config else None,
                       save_dtype=torch.bfloat16 if precision == "bf16" else None)
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
               "train_runtime_s": result.metrics.get("train_runtime"), "use_vllm": use_vllm, "generator": generator,
               "processes": launch.world, "distributed": engine_of(trainer, launch), "zero3_partitioned_at_load": zero3_load,
               "resumed": resume_from is not None, "chat_format": plan.as_dict() if plan else None}
    write_text_atomic(out / "log_history.json", json.dumps(history, indent=1))
    _plot_rewards(history, out / "rewards.png")
    write_manifest(out, "grpo", config=config, inputs={"model": config.model, "prompts": config.prompts,
                                                       "prompts_digest": file_digest(config.prompts) if Path(config.prompts).exists() else None},
                   outputs={"model": ".", "rewards_plot": "rewards.png"}, metrics=metrics)
    return metrics

