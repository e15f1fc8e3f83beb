"""The demo's stages, each a call into the product (`train`, `grpo`, `eval`, `export`, `serve`,
`generate`, `filter`), each leaving its folder under `out` and its figures in `state.json`, so a
rerun skips what is finished. The last stage writes report.json and report.png.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Optional

from rich.console import Console

from r1_distill.errors import UserError
from r1_distill.files import write_json_atomic, write_text_atomic
from r1_distill.options import option
from r1_distill.server_process import ServerProcess
from r1_distill.traces import TraceRecord, read_traces, write_traces

from .models import DemoModelSpec, build_model, build_tokenizer
from .task import cold_start_traces, make_splits

console = Console(stderr=True)
RECIPES = Path(__file__).with_name("recipes")


@dataclass(frozen=True)
class DemoConfig:
    out: str = "runs/demo"
    seed: int = 0
    train_problems: int = 1000  # cold-start SFT traces
    prompt_problems: int = 1200  # GRPO prompts, then the teacher's sampling prompts
    heldout_problems: int = 200
    slip_rate: float = 0.2
    vague_rate: float = 0.3
    teacher: DemoModelSpec = DemoModelSpec(hidden_size=192, num_hidden_layers=4)
    student: DemoModelSpec = DemoModelSpec(hidden_size=128, num_hidden_layers=3, seed=1)
    sft_epochs: float = 8
    sft_lr: float = 3e-3
    student_epochs: float = 20
    grpo_steps: int = 80
    grpo_lr: float = 1e-4
    grpo_generations: int = 8
    grpo_prompts_per_step: int = 8
    samples: int = 4  # K: teacher samples per prompt, and eval samples per problem
    keep_per_prompt: int = 1  # distinct problems teach a small student more than repeats of easy ones
    max_tokens: int = 96
    # on-policy distillation from the untrained student (GKD, lambda 1, every token of the student's samples scored
    # by the GRPO teacher's full distribution): kept as a documented negative result (no published recipe starts
    # there). Forward KL: reverse KL (mode-seeking on its own noise) stayed under 2% pass@1.
    onpolicy_divergence: str = "forward"
    onpolicy_epochs: float = 6  # about the teacher tokens SFT's sampling spent
    onpolicy_lr: float = 2e-3
    # The experiment as the literature runs it (Thinking Machines' on-policy distillation; Qwen3): a short SFT cold
    # start on some of the filtered traces, well below the teacher, then from that one checkpoint three arms on the
    # other traces' prompts: on-policy distillation (reverse KL, temperature 1, several samples a prompt, rollouts of
    # max_tokens, which close </think> on the teacher's traces), continued SFT on as many more verified traces as
    # cost the teacher the tokens OPD's scoring did, and GRPO with the verifier on as many rollouts as OPD sampled.
    coldstart_traces: int = 240
    coldstart_epochs: float = 16
    opd_samples: int = 4  # rollouts of each prompt (Thinking Machines: group_size 4)
    opd_epochs: float = 1
    opd_lr: float = 3e-4
    arm_sft_epochs: float = 4
    arm_grpo_lr: float = 1e-4

    @classmethod
    def fast(cls, out: str = "runs/demo-fast", seed: int = 0) -> "DemoConfig":
        """The same stages at a size the test suite can afford (a few minutes on 2 cores): recipes/demo-fast.yaml."""
        return cls.from_recipe(RECIPES / "demo-fast.yaml", out=out, seed=seed)

    @classmethod
    def from_recipe(cls, path, **given) -> "DemoConfig":
        """A demo recipe file (the fields of DemoConfig, the model shapes as mappings), `given` over it."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"cannot read the demo recipe {path}: {' '.join(str(exc).split())[:200]}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known) if isinstance(data, dict) else ["(not a mapping)"]
        if unknown:
            raise UserError(f"the demo recipe {path} has unknown settings {', '.join(map(str, unknown))} "
                            f"(known: {', '.join(sorted(known))})")
        for model in ("teacher", "student"):
            if isinstance(data.get(model), dict):
                data[model] = DemoModelSpec(**data[model])
        return cls(**{**data, **given})


@dataclass
class DemoOptions:
    """`r1-distill demo`'s options."""

    out: Optional[str] = option(None, help="Run folder (default: runs/demo, runs/demo-fast with --fast).")
    fast: bool = option(False, help="The same stages, smaller (a few minutes; what the test suite runs).")
    seed: int = option(0, help="Random seed of the data, the models and the sampling.")
    recipe: Optional[str] = option(None, metavar="FILE.yaml", help="The demo's settings (data sizes, model shapes, "
                                   "epochs, learning rates) from a file like r1_distill/demo/recipes/demo.yaml.")
    redo: Optional[str] = option(None, metavar="STAGE", help=(
        "Run this stage and every later one again, with the settings given now (a finished run's earlier stages "
        "are kept as they were made), e.g. --redo student-coldstart to try other arm settings."))
    seeds: Optional[str] = option(None, metavar="0,1,2", help=(
        "Run the demo once per seed, each in OUT/seed-N (finished ones are skipped), and write OUT/report.json and "
        "report.png over them: each model's and arm's pass@1 per seed with the mean and its standard error."))

    def demo_config(self) -> DemoConfig:
        if self.recipe:
            config = DemoConfig.from_recipe(self.recipe, seed=self.seed, out=self.out or "runs/demo-recipe")
        else:
            config = DemoConfig.fast(seed=self.seed) if self.fast else DemoConfig(seed=self.seed)
        return replace(config, out=self.out) if self.out is not None else config

STAGES = ["data", "teacher-sft", "eval-teacher-sft", "teacher-grpo", "eval-teacher-grpo", "export-teacher",
          "sample", "filter", "student-distill", "student-control", "student-onpolicy", "student-coldstart", "arm-opd",
          "arm-sft", "arm-grpo", "eval-student-untrained", "eval-student", "eval-control", "eval-student-onpolicy",
          "eval-student-coldstart", "eval-arm-opd", "eval-arm-sft", "eval-arm-grpo", "export-student",
          "eval-student-gguf", "report"]


class Demo:
    def __init__(self, config: DemoConfig, redo: str | None = None):
        self.config = config
        self.out = Path(config.out)
        self.state_file = self.out / "state.json"
        self.state = json.loads(self.state_file.read_text()) if self.state_file.is_file() else {}
        if redo is not None:
            self._forget_from(redo)
        elif self.state.get("config") is not None and not _same_settings(self.state["config"], _jsonable(config)):
            raise UserError(f"{self.out} holds a demo run with other settings: pass another --out, delete it, or "
                            "--redo STAGE to run that stage and the later ones with these settings")
        self.state["config"] = _jsonable(config)
        self.state.setdefault("stages", {})

    def _forget_from(self, stage: str) -> None:
        """Drop `stage` and every later one: their state and what they wrote (a model trained into an existing
        folder would resume, an evaluation would count the old samples)."""
        if stage not in STAGES:
            raise UserError(f"--redo {stage}: no such stage (the stages: {', '.join(STAGES)})")
        for name in STAGES[STAGES.index(stage):]:
            self.state.get("stages", {}).pop(name, None)
            for written in STAGE_OUTPUTS.get(name, ()):
                path = self.path(*written.split("/"))
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    # -- bookkeeping -----------------------------------------------------------------------------
    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        for number, name in enumerate(STAGES, start=1):
            if name in self.state["stages"]:
                console.print(f"[dim][{number}/{len(STAGES)}] {name}: done earlier, skipped[/dim]")
                continue
            console.print(f"[bold][{number}/{len(STAGES)}] {name}[/bold]")
            t0 = time.perf_counter()
            figures = getattr(self, "stage_" + name.replace("-", "_"))()
            self.state["stages"][name] = {"seconds": round(time.perf_counter() - t0, 1), **(figures or {})}
            write_json_atomic(self.state_file, self.state)
            console.print(f"    done in {self.state['stages'][name]['seconds']:.1f}s {_short(figures)}")
        self.state["this_run_seconds"] = round(time.perf_counter() - started, 1)
        write_json_atomic(self.state_file, self.state)
        return json.loads((self.out / "report.json").read_text())

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    @property
    def registry(self) -> str:
        return str(self.path("models.yaml"))

    # -- stages ----------------------------------------------------------------------------------
    def stage_data(self) -> dict:
        import yaml

        from r1_distill.registry import registry_path

        c = self.config
        splits = make_splits({"train": c.train_problems, "prompt": c.prompt_problems, "heldout": c.heldout_problems},
                             seed=c.seed)
        rows = cold_start_traces(splits["train"], c.slip_rate, c.vague_rate, seed=c.seed)
        records = [TraceRecord.from_completion(
            problem_id=r["problem"].id, problem=r["problem"].text, prompt=r["problem"].text, sample_index=0,
            reference_answer=str(r["problem"].answer), teacher="scripted cold start", backend="script", kept=True,
            finish_reason="stop", completion=f"{r['reasoning']}\n</think>\n\n{r['answer']}",
            meta={"slipped": r["slipped"], "vague": r["vague"]}) for r in rows]
        write_traces(self.path("data", "cold_start.jsonl"), records)
        for split in ("prompt", "heldout"):
            write_text_atomic(self.path("data", f"{split}.jsonl"),
                              "".join(json.dumps(p.as_prompt_row()) + "\n" for p in splits[split]))
        # the demo's registry: R1's sampling, no instruction suffix (the task's prompts are the whole message)
        registry = yaml.safe_load(registry_path(None).read_text())
        registry["defaults"]["sampling"].update(prompt_suffix="", max_new_tokens=c.max_tokens, samples=c.samples)
        write_text_atomic(self.path("models.yaml"), yaml.safe_dump(registry, allow_unicode=True, sort_keys=False))
        corpus = [x for r in rows for x in (r["problem"].text, r["reasoning"], r["answer"])]
        tokenizer = build_tokenizer(corpus, self.path("models", "tokenizer"))
        build_model(c.teacher, tokenizer, self.path("models", "teacher-base"))
        build_model(c.student, tokenizer, self.path("models", "student-base"))
        return {"splits": {k: len(v) for k, v in splits.items()}, "cold_start_traces": len(records),
                "cold_start_slipped": sum(r["slipped"] for r in rows), "cold_start_vague": sum(r["vague"] for r in rows)}

    def _train(self, base: str, traces: str, out: str, epochs: float) -> dict:
        from r1_distill.distill.train import TrainConfig, train

        m = train(TrainConfig(student=str(self.path("models", base)), traces=str(traces), out=str(self.path("models", out)),
                              learning_rate=self.config.sft_lr, epochs=epochs, max_length=256, effective_batch=16,
                              per_device_batch=16, save_steps=100_000, seed=self.config.seed, models_file=self.registry,
                              print_logs=False))
        return {**{k: m[k] for k in ("trained_on", "mean_tokens", "steps", "first_loss", "final_loss", "train_runtime_s")},
                "epochs": epochs}

    def stage_teacher_sft(self) -> dict:
        return self._train("teacher-base", self.path("data", "cold_start.jsonl"), "teacher-sft", self.config.sft_epochs)

    def _eval(self, model: str, name: str) -> dict:
        from r1_distill.distill.evaluate import EvalConfig, evaluate

        s = evaluate(EvalConfig(model=model, bench=str(self.path("data", "heldout.jsonl")), out=str(self.path("eval", name)),
                                samples=self.config.samples, max_tokens=self.config.max_tokens, seed=self.config.seed,
                                batch_size=256, concurrency=8, models_file=self.registry))
        return {k: s[k] for k in ("pass@1", "pass@1_stderr", "cons@K", "K", "problems", "truncation_rate",
                                  "unclosed_thinking_rate", "mean_reasoning_tokens")}

    def stage_eval_teacher_sft(self) -> dict:
        return self._eval(str(self.path("models", "teacher-sft")), "teacher-sft")

    def stage_teacher_grpo(self) -> dict:
        from r1_distill.distill.grpo import GRPORunConfig, grpo

        c = self.config
        m = grpo(GRPORunConfig(model=str(self.path("models", "teacher-sft")), prompts=str(self.path("data", "prompt.jsonl")),
                               out=str(self.path("models", "teacher-grpo")), steps=c.grpo_steps, learning_rate=c.grpo_lr,
                               num_generations=c.grpo_generations, prompts_per_step=c.grpo_prompts_per_step,
                               max_completion_length=64, prompt_suffix="", save_steps=100_000, seed=c.seed,
                               models_file=self.registry, print_logs=False))
        return {"steps": m["steps"], "rewards": m["rewards"], "train_runtime_s": m["train_runtime_s"]}

    def stage_eval_teacher_grpo(self) -> dict:
        return self._eval(str(self.path("models", "teacher-grpo")), "teacher-grpo")

    def _export(self, model: str, name: str, quants: list[str]) -> dict:
        from r1_distill.export.pipeline import ExportConfig, export_gguf

        report = export_gguf(ExportConfig(model=str(self.path("models", model)), out=str(self.path("gguf")), quants=quants,
                                          name=name, models_file=self.registry))
        return {"files": {q: {k: f[k] for k in ("path", "bytes", "top1_agreement", "mean_kl")} for q, f in report["files"].items()}}

    def stage_export_teacher(self) -> dict:
        return self._export("teacher-grpo", "teacher", ["Q8_0"])

    def stage_sample(self) -> dict:
        """The teacher served by `r1-distill serve` on 127.0.0.1, sampled by `generate`, K per prompt."""
        from r1_distill.teacher.generate import GenerateConfig, generate

        with ServerProcess(self.path("gguf", "teacher-Q8_0.gguf"), "--parallel", "8", "--ctx", "2048", "--max-queue", "4096",
                           models_file=self.registry, log=self.out / "serve.log") as server:
            summary = generate(GenerateConfig(teacher=server.url + "/v1", prompts=str(self.path("data", "prompt.jsonl")),
                                              out=str(self.path("traces")), samples=self.config.samples,
                                              max_tokens=self.config.max_tokens, seed=self.config.seed, concurrency=8,
                                              models_file=self.registry))
        return {k: summary.get(k) for k in ("total", "generated", "traces_per_s", "tokens_per_s")}

    def stage_filter(self) -> dict:
        from r1_distill.teacher.filter import FilterConfig, filter_traces

        report = filter_traces(FilterConfig(traces=str(self.path("traces")), out=str(self.path("filtered")),
                                            decontaminate=[str(self.path("data", "heldout.jsonl"))],
                                            check_arithmetic=True, keep_per_prompt=self.config.keep_per_prompt))
        # The control: as many traces as were kept, drawn from everything the teacher wrote (kept + dropped, each
        # with its verdicts) except what shares text with the held-out split: only the quality checks differ.
        judged = read_traces(self.path("filtered", "kept.jsonl")) + read_traces(self.path("filtered", "dropped.jsonl"))
        unfiltered = sorted((r for r in judged if r.checks["decontamination"].passed),
                            key=lambda r: (r.problem_id, r.sample_index))
        control = random.Random(self.config.seed).sample(unfiltered, report["kept"])
        control_correct = sum(r.checks["correctness"].passed for r in control) / max(1, len(control))
        for r in control:
            r.kept, r.checks = True, {}
        write_traces(self.path("filtered", "unfiltered_control.jsonl"), control)
        return {"input": report["input"], "kept": report["kept"], "dropped_by_first_reason": report["dropped_by_first_reason"],
                "mean_pass_rate": report["mean_pass_rate"], "control_correct": control_correct}

    def stage_student_distill(self) -> dict:
        return self._train("student-base", self.path("filtered", "kept.jsonl"), "student", self.config.student_epochs)

    def stage_student_control(self) -> dict:
        return self._train("student-base", self.path("filtered", "unfiltered_control.jsonl"), "student-control",
                           self.config.student_epochs)

    def _onpolicy(self, student: str, out: str, traces: Path, *, divergence: str, epochs: float, learning_rate: float,
                  samples_per_prompt: int = 1) -> dict:
        from r1_distill.distill.onpolicy import OnPolicyConfig, train_on_policy

        c = self.config
        m = train_on_policy(OnPolicyConfig(
            student=str(self.path("models", student)), teacher=str(self.path("models", "teacher-grpo")),
            traces=str(traces), out=str(self.path("models", out)), lmbda=1.0, divergence=divergence, temperature=1.0,
            max_new_tokens=c.max_tokens, samples_per_prompt=samples_per_prompt, learning_rate=learning_rate,
            epochs=epochs, max_length=256, effective_batch=16, per_device_batch=16, save_steps=100_000, seed=c.seed,
            models_file=self.registry, print_logs=False))
        return {k: m[k] for k in ("prompts", "samples_per_prompt", "divergence", "steps", "first_loss", "final_loss",
                                  "train_runtime_s", "compute")}

    def stage_student_onpolicy(self) -> dict:
        c = self.config
        return self._onpolicy("student-base", "student-onpolicy", self.path("filtered", "kept.jsonl"),
                              divergence=c.onpolicy_divergence, epochs=c.onpolicy_epochs, learning_rate=c.onpolicy_lr)

    # -- the three arms from one cold start ----------------------------------------------------------
    def stage_student_coldstart(self) -> dict:
        """Some of the filtered traces (a seeded draw) for the cold start; the rest are the arms' pool."""
        kept = read_traces(self.path("filtered", "kept.jsonl"))
        random.Random(self.config.seed).shuffle(kept)
        n = min(self.config.coldstart_traces, len(kept) // 2)
        write_traces(self.path("arms", "coldstart.jsonl"), kept[:n])
        write_traces(self.path("arms", "pool.jsonl"), kept[n:])
        write_text_atomic(self.path("arms", "pool_prompts.jsonl"), "".join(
            json.dumps({"id": r.problem_id, "problem": r.problem, "answer": r.reference_answer}) + "\n" for r in kept[n:]))
        figures = self._train("student-base", self.path("arms", "coldstart.jsonl"), "student-coldstart",
                              self.config.coldstart_epochs)
        return {**figures, "traces": n, "pool": len(kept) - n}

    def stage_arm_opd(self) -> dict:
        c = self.config
        return self._onpolicy("student-coldstart", "arm-opd", self.path("arms", "pool.jsonl"), divergence="reverse",
                              epochs=c.opd_epochs, learning_rate=c.opd_lr, samples_per_prompt=c.opd_samples)

    def stage_arm_sft(self) -> dict:
        """Continued SFT on as many more verified traces as cost the teacher OPD's teacher tokens (sampling spends
        the teacher's tokens on every trace, kept or not: each kept trace costs the total over the kept)."""
        from .report import sampling_compute

        per_trace = sampling_compute(self.path("traces"))["teacher_tokens"] / self.state["stages"]["filter"]["kept"]
        target = self.state["stages"]["arm-opd"]["compute"]["teacher_tokens"]
        pool = read_traces(self.path("arms", "pool.jsonl"))
        n = max(1, min(len(pool), round(target / per_trace)))
        write_traces(self.path("arms", "sft.jsonl"), pool[:n])
        figures = self._train("student-coldstart", self.path("arms", "sft.jsonl"), "arm-sft", self.config.arm_sft_epochs)
        return {**figures, "traces": n, "pool": len(pool), "teacher_tokens_per_kept_trace": round(per_trace, 1),
                "pool_exhausted": n == len(pool) and n < round(target / per_trace)}

    def stage_arm_grpo(self) -> dict:
        """GRPO with the verifier (correctness, format) on as many rollouts as OPD sampled, no teacher."""
        from r1_distill.distill.grpo import GRPORunConfig, grpo

        c = self.config
        rollouts = self.state["stages"]["arm-opd"]["compute"]["teacher_forward_passes"]
        # a step takes whole groups of distinct prompts: no more prompts a step than the pool has
        prompts_per_step = min(c.grpo_prompts_per_step, self.state["stages"]["student-coldstart"]["pool"])
        per_step = c.grpo_generations * prompts_per_step
        steps = max(1, round(rollouts / per_step))
        out = self.path("models", "arm-grpo")
        m = grpo(GRPORunConfig(model=str(self.path("models", "student-coldstart")),
                               prompts=str(self.path("arms", "pool_prompts.jsonl")), out=str(out), steps=steps,
                               learning_rate=c.arm_grpo_lr, num_generations=c.grpo_generations,
                               prompts_per_step=prompts_per_step, max_completion_length=c.max_tokens,
                               prompt_suffix="", save_steps=100_000, seed=c.seed, models_file=self.registry,
                               print_logs=False))
        history = json.loads((out / "log_history.json").read_text())
        sampled = round(sum(h["completions/mean_length"] * per_step for h in history if "completions/mean_length" in h))
        return {"steps": m["steps"], "rollouts": steps * per_step, "rewards": m["rewards"],
                "train_runtime_s": m["train_runtime_s"], "student_sampled_tokens": sampled}

    def stage_eval_student_untrained(self) -> dict:
        return self._eval(str(self.path("models", "student-base")), "student-untrained")

    def stage_eval_student(self) -> dict:
        return self._eval(str(self.path("models", "student")), "student")

    def stage_eval_control(self) -> dict:
        return self._eval(str(self.path("models", "student-control")), "student-control")

    def stage_eval_student_onpolicy(self) -> dict:
        return self._eval(str(self.path("models", "student-onpolicy")), "student-onpolicy")

    def stage_eval_student_coldstart(self) -> dict:
        return self._eval(str(self.path("models", "student-coldstart")), "student-coldstart")

    def stage_eval_arm_opd(self) -> dict:
        return self._eval(str(self.path("models", "arm-opd")), "arm-opd")

    def stage_eval_arm_sft(self) -> dict:
        return self._eval(str(self.path("models", "arm-sft")), "arm-sft")

    def stage_eval_arm_grpo(self) -> dict:
        return self._eval(str(self.path("models", "arm-grpo")), "arm-grpo")

    def stage_export_student(self) -> dict:
        return self._export("student", "student", ["Q8_0", "Q4_K_M"])

    def stage_eval_student_gguf(self) -> dict:
        return self._eval(str(self.path("gguf", "student-Q4_K_M.gguf")), "student-Q4_K_M")

    def stage_report(self) -> dict:
        from .report import write_report

        report = write_report(self.out, self.state)
        return {"checks": report["checks"]}


# what each stage writes under the run folder (exports only replace their own files, atomically)
STAGE_OUTPUTS = {
    "data": ["data", "models/tokenizer", "models/teacher-base", "models/student-base"],
    "teacher-sft": ["models/teacher-sft"], "eval-teacher-sft": ["eval/teacher-sft"],
    "teacher-grpo": ["models/teacher-grpo"], "eval-teacher-grpo": ["eval/teacher-grpo"],
    "sample": ["traces"], "filter": ["filtered"], "student-distill": ["models/student"],
    "student-control": ["models/student-control"], "student-onpolicy": ["models/student-onpolicy"],
    "student-coldstart": ["models/student-coldstart", "arms"], "arm-opd": ["models/arm-opd"],
    "arm-sft": ["models/arm-sft"], "arm-grpo": ["models/arm-grpo"],
    "eval-student-untrained": ["eval/student-untrained"], "eval-student": ["eval/student"],
    "eval-control": ["eval/student-control"], "eval-student-onpolicy": ["eval/student-onpolicy"],
    "eval-student-coldstart": ["eval/student-coldstart"], "eval-arm-opd": ["eval/arm-opd"],
    "eval-arm-sft": ["eval/arm-sft"], "eval-arm-grpo": ["eval/arm-grpo"], "eval-student-gguf": ["eval/student-Q4_K_M"],
    "report": ["report.json", "report.png"],
}


def _jsonable(config: DemoConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))


def _short(figures: dict | None) -> str:
    if not figures:
        return ""
    keys = [k for k in ("pass@1", "cons@K", "kept", "final_loss", "generated") if k in figures]
    return "(" + ", ".join(f"{k} {figures[k]:.3g}" if isinstance(figures[k], float) else f"{k} {figures[k]}" for k in keys) + ")"


def _same_settings(a: dict, b: dict) -> bool:
    """The same run's settings: a run folder moved or linked elsewhere is still that run."""
    return {k: v for k, v in a.items() if k != "out"} == {k: v for k, v in b.items() if k != "out"}


def run_demo(config: DemoConfig, on_stage: Callable[[str], None] | None = None, redo: str | None = None) -> dict:
    return Demo(config, redo=redo).run()
