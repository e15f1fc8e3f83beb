import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from r1_distill.errors import UserError
from r1_distill.registry import PACKAGE_REGISTRY, load_registry, read_template

R1_STUDENTS = {
    "r1-distill-qwen-1.5b": "Qwen/Qwen2.5-Math-1.5B",
    "r1-distill-qwen-7b": "Qwen/Qwen2.5-Math-7B",
    "r1-distill-qwen-14b": "Qwen/Qwen2.5-14B",
    "r1-distill-qwen-32b": "Qwen/Qwen2.5-32B",
    "r1-distill-llama-8b": "meta-llama/Llama-3.1-8B",
    "r1-distill-llama-70b": "meta-llama/Llama-3.3-70B-Instruct",
}


def test_shipped_registry_has_the_six_students_and_r1_sampling():
    reg = load_registry()
    for name, base in R1_STUDENTS.items():
        assert reg.students[name].base == base
        assert reg.students[name].eos_token == "<｜end▁of▁sentence｜>"
    math_15b = reg.students["r1-distill-qwen-1.5b"]
    assert (math_15b.native_context, math_15b.rope_theta) == (4096, 10000)
    assert (math_15b.long_context.max_position_embeddings, math_15b.long_context.rope_theta) == (32768, 300000)
    s = reg.defaults.sampling
    assert (s.temperature, s.top_p, s.max_new_tokens, s.system_prompt) == (0.6, 0.95, 32768, None)
    assert s.force_think_prefix == "<think>\n" and "\\boxed{}" in s.prompt_suffix
    assert reg.teachers["deepseek-r1"].kind == "openai" and reg.teachers["deepseek-r1"].api_key_env
    assert reg.teachers["r1-distill-qwen-32b"].kind == "vllm"
    assert "Q4_K_M" in reg.export_presets["default"].quants
    assert reg.students["tiny-qwen2"].tiny and reg.students["tiny-llama"].tiny


def _bad_registry(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(PACKAGE_REGISTRY.read_text())
    mutate(data)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_misspelled_key_is_named(tmp_path):
    path = _bad_registry(tmp_path, lambda d: d["students"]["r1-distill-qwen-7b"]["recipe"].update(learning_rat=1e-5))
    with pytest.raises(UserError) as err:
        load_registry(path)
    msg = str(err.value)
    assert str(path) in msg and "students.r1-distill-qwen-7b.recipe.learning_rat" in msg and "unknown key" in msg


def test_wrong_type_and_missing_field_are_named(tmp_path):
    path = _bad_registry(tmp_path, lambda d: d["defaults"]["sampling"].update(temperature="hot"))
    with pytest.raises(UserError, match=r"defaults\.sampling\.temperature.*'hot'"):
        load_registry(path)
    path = _bad_registry(tmp_path, lambda d: d["students"]["tiny-llama"].pop("eos_token"))
    with pytest.raises(UserError, match=r"missing key 'students\.tiny-llama\.eos_token'"):
        load_registry(path)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_registry(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("students: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_registry(bad)


def _cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "r1_distill", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_cli_bad_registry_exits_2_naming_the_key(tmp_path):
    path = _bad_registry(tmp_path, lambda d: d["teachers"]["local"].update(bse_url="http://x"))
    out = _cli("--models", str(path), "models")
    assert out.returncode == 2
    assert "teachers.local.bse_url" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_cli_registry_from_environment(tmp_path):
    import os

    path = _bad_registry(tmp_path, lambda d: d.update(extra_section={}))
    out = _cli("models", env={**os.environ, "R1_DISTILL_MODELS": str(path)})
    assert out.returncode == 2 and "extra_section" in out.stderr


def test_templates_force_think_and_training_template_keeps_reasoning():
    from jinja2 import Environment

    msgs = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "think hard</think>\n\n4"},
            {"role": "user", "content": "and 3+3?"}]
    env = Environment()
    env.globals["raise_exception"] = lambda m: (_ for _ in ()).throw(ValueError(m))
    infer = env.from_string(read_template("r1-distill")).render(messages=msgs, bos_token="<BOS>", add_generation_prompt=True)
    assert infer == "<BOS><｜User｜>2+2?<｜Assistant｜>4<｜end▁of▁sentence｜><｜User｜>and 3+3?<｜Assistant｜><think>\n"
