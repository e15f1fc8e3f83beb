"""r1-distill export --gguf on tiny Qwen2 and Llama students made from hub bases (Qwen2.5-Math's and Llama 3.3
Instruct's tokenizers as shipped, given R1's format as `train` gives it); the released-model stand-ins where
that path is what is tested (an adapter over a released R1-Distill model)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from r1_distill.export.pipeline import STAGING_PREFIX, ExportConfig, export_gguf
from r1_distill.errors import UserError

pytestmark = pytest.mark.slow
QUANTS = ["F16", "Q8_0", "Q4_K_M"]


@pytest.fixture(scope="session")
def exported(tmp_path_factory, request):
    """arch -> (out dir, report), built once per session."""
    cache = {}

    def get(arch):
        if arch not in cache:
            model = request.getfixturevalue(f"hub_student_{arch}")  # from a hub base, as users export
            out = tmp_path_factory.mktemp(f"gguf-{arch}")
            cache[arch] = (out, export_gguf(ExportConfig(model=str(model), out=str(out), quants=QUANTS, name=f"tiny-{arch}")))
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_export_writes_verified_files(arch, exported):
    out, report = exported(arch)
    assert sorted(report["files"]) == sorted(QUANTS)
    for quant in QUANTS:
        f = report["files"][quant]
        assert (out / f"tiny-{arch}-{quant}.gguf").is_file() and f["path"] == f"tiny-{arch}-{quant}.gguf"
        assert f["tokenization_identical"], quant
        assert 0.5 <= f["top1_agreement"] <= 1 and f["mean_kl"] >= 0 and 0 <= f["greedy_match"] <= 1
    assert report["files"]["F16"]["max_abs_logit_diff"] < 1e-3
    assert report["files"]["F16"]["parity"]
    assert report["files"]["Q4_K_M"]["bytes"] < report["files"]["F16"]["bytes"]
    on_disk = json.loads((out / "export_report.json").read_text())
    assert on_disk["files"]["Q8_0"]["mean_kl"] == report["files"]["Q8_0"]["mean_kl"]
    assert (out / "manifest.json").is_file() and "<think>" in (out / "Modelfile").read_text()
    assert not list(out.glob(f"{STAGING_PREFIX}*")) and not list(out.glob("*.part"))


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_gguf_chat_starts_inside_the_thinking(arch, exported):
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    out, _ = exported(arch)
    for quant in QUANTS:
        llm = Llama(model_path=str(out / f"tiny-{arch}-{quant}.gguf"), n_ctx=256, verbose=False, seed=1)
        meta = llm.metadata
        assert meta["general.name"] == f"tiny-{arch}"
        assert float(meta["general.sampling.temp"]) == pytest.approx(0.6)
        assert float(meta["general.sampling.top_p"]) == pytest.approx(0.95)
        template = meta["tokenizer.chat_template"]
        messages = [{"role": "user", "content": "What is 2+2?"}]
        prompt = Jinja2ChatFormatter(template, eos_token="<｜end▁of▁sentence｜>",
                                     bos_token="<｜begin▁of▁sentence｜>")(messages=messages).prompt
        assert prompt.endswith("<｜Assistant｜><think>\n")
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        assert llm.token_bos() in tokens and llm.detokenize(tokens[-2:], special=True).decode().startswith("<think>")
        reply = llm.create_chat_completion(messages=messages, max_tokens=6, temperature=0.0)
        assert reply["choices"][0]["message"]["role"] == "assistant"
        llm.close()


def _llama_logits(path: Path, text: str) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=128, logits_all=True, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)])
    llm.close()
    return logits


def test_lora_adapter_exports_the_same_as_the_merged_model(tiny_qwen2, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2)
    lora = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                                           init_lora_weights=False))  # B != 0: the adapter changes the model
    adapter_dir = tmp_path / "adapter"
    lora.save_pretrained(adapter_dir)
    merged_dir = tmp_path / "merged"
    lora.merge_and_unload().save_pretrained(merged_dir)
    AutoTokenizer.from_pretrained(tiny_qwen2).save_pretrained(merged_dir)

    via_adapter = export_gguf(ExportConfig(model=str(adapter_dir), base=str(tiny_qwen2), out=str(tmp_path / "a"),
                                           quants=["F16"], name="student", greedy_tokens=4))
    via_merged = export_gguf(ExportConfig(model=str(merged_dir), out=str(tmp_path / "m"), quants=["F16"],
                                          name="student", greedy_tokens=4))
    assert via_adapter["adapter"] and via_adapter["files"]["F16"]["parity"]
    assert not via_merged["adapter"] and via_merged["files"]["F16"]["parity"]
    text = "<｜User｜>1+1?<｜Assistant｜><think>\n"
    a = _llama_logits(tmp_path / "a" / "student-F16.gguf", text)
    m = _llama_logits(tmp_path / "m" / "student-F16.gguf", text)
    assert np.abs(a - m).max() < 1e-4
    base_out = export_gguf(ExportConfig(model=str(tiny_qwen2), out=str(tmp_path / "b"), quants=["F16"], name="base",
                                        greedy_tokens=4))
    assert base_out["files"]["F16"]["parity"]
    assert np.abs(_llama_logits(tmp_path / "b" / "base-F16.gguf", text) - a).max() > 1e-3  # the adapter mattered


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "r1_distill", *args], capture_output=True, text=True, timeout=300)


def test_bad_inputs_exit_2_with_one_line_and_leave_nothing(tmp_path, tiny_qwen2):
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    cases = [
        (["--model", str(tmp_path / "missing")], "does not exist"),
        (["--model", str(gpt2)], "unsupported architecture GPT2LMHeadModel"),
        (["--model", str(tiny_qwen2), "--quant", "Q4_K_M,Q9_Z"], "unknown quant type 'Q9_Z'"),
        (["--model", str(tiny_qwen2), "--preset", "nope"], "unknown export preset"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        result = _cli("export", "--gguf", "--out", str(out), *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert not out.exists() or not any(out.iterdir())


def test_failed_parity_fails_the_export_and_writes_nothing(tiny_qwen2, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UserError, match="does not match the HF model"):
        export_gguf(ExportConfig(model=str(tiny_qwen2), out=str(out), quants=["F16", "Q4_K_M"], f16_tolerance=1e-9,
                                 greedy_tokens=2))
    assert list(out.iterdir()) == []
