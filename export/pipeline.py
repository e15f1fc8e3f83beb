"""`r1-distill export --gguf`: merge an adapter, convert with llama.cpp's converter, quantize, verify.

Everything is built in a hidden staging folder inside the output folder and moved to its final
name (``DIR/<model>-<QUANT>.gguf``) only once complete and verified, so an interrupted export
leaves nothing partial at a final path. An F16 file that fails parity with the HF model fails the
export.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Optional
from pathlib import Path

from r1_distill.errors import UserError
from r1_distill.files import write_json_atomic, write_text_atomic
from r1_distill.manifest import write_manifest
from r1_distill.options import internal, option
from r1_distill.progress import StepProgress
from r1_distill.registry import load_registry, read_template

from .converter import run_converter
from .quantize import FLOAT_TYPES, estimated_bytes, parse_quants, quantize
from .verify import as_dict, check_file, hf_reference, passes_parity

SUPPORTED_ARCHITECTURES = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama"}
STAGING_PREFIX = ".export-staging-"


@dataclass
class ExportConfig:
    model: str = option(help="HF model folder, hub id, or LoRA adapter folder.")
    out: str = option(help="Output folder for <model>-<QUANT>.gguf files and the report.")
    gguf: bool = option(False, help="Export to GGUF (the one format so far).")
    quants: Optional[list[str]] = option(None, flags=("--quant",), csv=True,
                                         help="Comma-separated: F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0 (default Q4_K_M).")
    preset: Optional[str] = option(None, help="An export preset of models.yaml instead of --quant.")
    base: Optional[str] = option(None, help="Base model of an adapter (default: the adapter's record).")
    name: Optional[str] = option(None, help="File name stem (default: the model folder's name).")
    # written into the GGUF (forces "<think>\n"); default: the format the model was trained in (its manifest)
    chat_template: Optional[str] = option(None, help="Chat template written into the GGUF: r1-distill, chatml-think "
                                          "or a .jinja file (default: the format the model was trained in).")
    imatrix: Optional[str] = option(None, help="Importance matrix file (needs llama-quantize on PATH).")
    threads: Optional[int] = option(None, help="CPU threads for quantizing and verifying.")
    greedy_tokens: int = option(16, help="Greedy tokens compared per verification prompt.")
    f16_tolerance: float = option(1e-3, help="F16 parity: last-token logits within this x max(1, logit scale).")
    draft: Optional[str] = option(None, metavar="FILE.gguf", help=(
        "The draft model to serve this one with (speculative decoding: the 1.5B student of the same teacher for "
        "a 7B one): its vocabulary is checked against every exported file, and it goes into the report and the "
        "serve command."))
    models_file: Optional[str] = internal(None)


def resolve_quants(config: ExportConfig, registry) -> list[str]:
    """--quant, or a models.yaml preset's, or Q4_K_M."""
    if config.quants and config.preset:
        raise UserError("pass --quant or --preset, not both")
    if config.preset:
        if config.preset not in registry.export_presets:
            raise UserError(f"unknown export preset {config.preset!r}: known are {', '.join(registry.export_presets)}")
        return list(registry.export_presets[config.preset].quants)
    return list(config.quants or ["Q4_K_M"])


def _resolve_model(spec: str, what: str = "model") -> Path:
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    looks_like_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", spec) is not None and not spec.startswith((".", "/", "~"))
    if path.exists() or not looks_like_hub_id:
        raise UserError(f"{what} folder {spec} does not exist: pass an HF model folder (config.json and weights), "
                        "an adapter folder, or a hub id")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec))
    except Exception as exc:
        raise UserError(f"cannot download {spec} from the hub ({type(exc).__name__}): check the id and your "
                        "network, or pass a local folder") from None


def trained_format(folder: Path) -> str | None:
    """The chat format `train` or `grpo` gave the model, from its manifest."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    chat_format = (json.loads(manifest.read_text()).get("metrics") or {}).get("chat_format") or {}
    return chat_format.get("format")


def _is_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file()


def _architecture(folder: Path) -> str:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserError(f"{folder} has no config.json: not an HF model folder")
    archs = json.loads(config_file.read_text()).get("architectures") or ["(none)"]
    if archs[0] not in SUPPORTED_ARCHITECTURES:
        raise UserError(f"unsupported architecture {archs[0]} in {folder}: export handles "
                        f"{', '.join(SUPPORTED_ARCHITECTURES)} (the R1 students)")
    return SUPPORTED_ARCHITECTURES[archs[0]]


def _weights_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) or sum(f.stat().st_size for f in folder.glob("*.bin"))


def _check_disk(out: Path, model: Path, quants: list[str], adapter: bool) -> None:
    params = _weights_bytes(model) // 2  # 16-bit weights; an overestimate for f32 folders
    need = estimated_bytes(params, "F16") * (2 if adapter else 1) + sum(estimated_bytes(params, q) for q in quants)
    free = shutil.disk_usage(out).free
    if free < need:
        raise UserError(f"not enough disk space in {out}: the export needs about {need / 2**30:.1f} GiB, "
                        f"{free / 2**30:.1f} GiB are free; free space or choose another --out")


def merge_adapter(adapter: Path, base: str | None, target: Path) -> Path:
    """Merge a PEFT LoRA adapter into its base and save the merged HF folder at `target`."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_spec = base or PeftConfig.from_pretrained(adapter).base_model_name_or_path
    if not base_spec:
        raise UserError(f"{adapter} is an adapter with no recorded base model: pass --base")
    base_dir = _resolve_model(base_spec, "base model")
    _architecture(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(target)
    tokenizer_source = adapter if (adapter / "tokenizer_config.json").is_file() else base_dir
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(target)
    gen = base_dir / "generation_config.json"
    if gen.is_file() and not (target / "generation_config.json").is_file():
        shutil.copy(gen, target / "generation_config.json")
    return target


def _stage_hf_folder(model: Path, target: Path, template: str, sampling) -> Path:
    """A view of the model folder for the converter: weights linked, with our chat template (forced
    `<think>\\n`) and R1's sampling defaults, which the converter writes into the GGUF metadata."""
    target.mkdir(parents=True)
    for item in model.iterdir():
        if item.name in {"tokenizer_config.json", "chat_template.jinja", "chat_template.json", "generation_config.json"}:
            continue
        (target / item.name).symlink_to(item.resolve())
    tok_config_file = model / "tokenizer_config.json"
    if tok_config_file.is_file():
        tok_config = json.loads(tok_config_file.read_text())
        tok_config.pop("chat_template", None)  # it would win over chat_template.jinja
        (target / "tokenizer_config.json").write_text(json.dumps(tok_config, ensure_ascii=False, indent=2))
    (target / "chat_template.jinja").write_text(template)
    gen_file = model / "generation_config.json"
    gen = json.loads(gen_file.read_text()) if gen_file.is_file() else {}
    gen.update(temperature=sampling.temperature, top_p=sampling.top_p, do_sample=True)
    (target / "generation_config.json").write_text(json.dumps(gen, indent=2))
    return target


def modelfile_text(gguf_name: str, sampling) -> str:
    """An Ollama Modelfile for the R1 chat format, seen by Ollama as a thinking model.

    Ollama calls a model a thinking model when its template uses ``.Thinking`` inside the range over
    ``.Messages``, and takes the text right around it (``<think>`` ... ``</think>``) as the tags its
    parser splits on; a prompt that ends with the opening tag (R1's forced ``<think>\\n``) starts that
    parser inside the thinking. ``think: false`` (``.IsThinkSet`` and not ``.Think``) closes the
    thinking in the prompt instead. Earlier turns' thinking is not sent back, as in R1's template.
    """
    stops = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"]
    template = (
        "{{- if .System }}{{ .System }}{{ end }}\n"
        "{{- range $i, $_ := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
        "{{- if eq .Role \"user\" }}<｜User｜>{{ .Content }}\n"
        "{{- else if eq .Role \"assistant\" }}<｜Assistant｜>"
        "{{- if and $last .Thinking }}<think>\n{{ .Thinking }}\n</think>\n\n{{ end }}"
        "{{ .Content }}{{- if not $last }}<｜end▁of▁sentence｜>{{- end }}\n"
        "{{- end }}\n"
        "{{- if and $last (ne .Role \"assistant\") }}<｜Assistant｜>"
        "{{- if and $.IsThinkSet (not $.Think) }}<think>\n\n</think>\n\n{{ else }}<think>\n{{ end }}{{ end }}\n"
        "{{- end }}"
    )
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""',
             f"PARAMETER temperature {sampling.temperature}", f"PARAMETER top_p {sampling.top_p}"]
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"


def clean_stale_staging(out: Path) -> None:
    for stale in out.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def export_gguf(config: ExportConfig) -> dict:
    registry = load_registry(config.models_file)
    quants = parse_quants(resolve_quants(config, registry))
    source = _resolve_model(config.model)
    template = read_template(config.chat_template or trained_format(source) or "r1-distill")
    adapter = _is_adapter(source)
    arch = None if adapter else _architecture(source)
    if config.imatrix and not Path(config.imatrix).is_file():
        raise UserError(f"importance matrix {config.imatrix} does not exist")
    if config.draft and not (Path(config.draft).is_file() and config.draft.endswith(".gguf")):
        raise UserError(f"--draft {config.draft}: not a .gguf file (export the smaller student first)")
    name = config.name or source.resolve().name
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(out)
    if not adapter:
        _check_disk(out, source, quants, adapter)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    timings: dict[str, float] = {}
    report: dict = {"model": name, "source": str(source), "adapter": adapter, "quants": quants, "files": {}}
    steps = ["merge adapter"] if adapter else []
    steps += ["convert F16", "verify F16"] + [s for q in quants if q != "F16" for s in (f"quantize {q}", f"verify {q}")]
    try:
        with StepProgress(steps, title=f"export {name}") as progress:
            model_dir = source
            if adapter:
                with progress.step("merge adapter"), _timed(timings, "merge"):
                    model_dir = merge_adapter(source, config.base, staging / "merged")
                    arch = _architecture(model_dir)
                    report["base"] = config.base or "(from adapter_config.json)"
            hf_view = _stage_hf_folder(model_dir, staging / "hf", template, registry.defaults.sampling)
            f16, reference = _f16_file(config, name, hf_view, model_dir, staging, progress, timings, report)
            built = _quantized_files(config, name, quants, f16, reference, staging, progress, timings, report)
        report.update(architecture=arch, prompts=len(reference.texts), greedy_tokens=config.greedy_tokens,
                      timings_s={k: round(v, 3) for k, v in timings.items()})
        if config.draft:
            _check_draft(config.draft, built, report)
        _publish(config, out, name, source, quants, built, report, registry.defaults.sampling)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _f16_file(config: ExportConfig, name: str, hf_view: Path, model_dir: Path, staging: Path, progress, timings: dict,
              report: dict):
    """The F16 GGUF from llama.cpp's converter, verified against the HF model: (file, the HF reference)."""
    f16 = staging / f"{name}-F16.gguf"
    with progress.step("convert F16"), _timed(timings, "convert"):
        run_converter(hf_view, f16, "f16", model_name=name)
    with progress.step("verify F16"), _timed(timings, "verify F16"):
        reference = hf_reference(model_dir, config.greedy_tokens)
        check = check_file(f16, reference, greedy_tokens=config.greedy_tokens, threads=config.threads)
        parity = passes_parity(check, config.f16_tolerance)
        report["files"]["F16"] = {**as_dict(check), "parity": parity, "tolerance": config.f16_tolerance}
        if not parity:
            raise UserError(
                f"the F16 GGUF does not match the HF model (max logit difference {check.max_abs_logit_diff:.2e}, "
                f"tokenization identical: {check.tokenization_identical}); nothing was written"
            )
    return f16, reference


def _quantized_files(config: ExportConfig, name: str, quants: list[str], f16: Path, reference, staging: Path,
                     progress, timings: dict, report: dict) -> dict[str, Path]:
    """Each asked-for quant of the F16 file, each verified against the HF reference."""
    built = {"F16": f16} if "F16" in quants else {}
    for quant in quants:
        if quant == "F16":
            continue
        target = staging / f"{name}-{quant}.gguf"
        with progress.step(f"quantize {quant}"), _timed(timings, f"quantize {quant}"):
            quantize(f16, target, quant, threads=config.threads, imatrix=Path(config.imatrix) if config.imatrix else None)
        with progress.step(f"verify {quant}"), _timed(timings, f"verify {quant}"):
            check = check_file(target, reference, greedy_tokens=config.greedy_tokens, threads=config.threads)
            entry = as_dict(check)
            if quant in FLOAT_TYPES:
                entry["parity"] = passes_parity(check, config.f16_tolerance)
            report["files"][quant] = entry
        built[quant] = target
    return built


def _publish(config: ExportConfig, out: Path, name: str, source: Path, quants: list[str], built: dict[str, Path],
             report: dict, sampling) -> None:
    """The verified files moved into OUT, with the Modelfile, the report and the manifest."""
    for quant, path in built.items():
        final = out / path.name
        report["files"][quant].update(path=final.name, bytes=path.stat().st_size)
        os.replace(path, final)
    report["files"] = {q: report["files"][q] for q in quants}
    default_file = built.get("Q4_K_M", next(iter(built.values())))
    write_text_atomic(out / "Modelfile", modelfile_text(default_file.name, sampling))
    write_json_atomic(out / "export_report.json", report)
    write_manifest(out, "export", config=config, inputs={"model": str(source), "base": config.base},
                   outputs={q: f"{name}-{q}.gguf" for q in built}, metrics=report["files"])


def _check_draft(draft: str, built: dict[str, Path], report: dict) -> None:
    """The draft must tokenize as every exported file does (llama.cpp's vocabulary check); it is recorded."""
    from r1_distill.llama.speculation import check_draft_vocabulary

    for path in built.values():
        check_draft_vocabulary(str(path), draft)
    report["draft"] = str(Path(draft).resolve())


class _timed:
    def __init__(self, timings: dict, key: str):
        self.timings, self.key = timings, key

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.key] = time.perf_counter() - self.start
        return False
