"""`grpo` says which generator it uses, and asking for vLLM where it cannot run is a one-line error before any
model loads, never a silent fall-back to transformers' generation (many times slower at R1 lengths)."""

import subprocess
import sys

import pytest


pytestmark = pytest.mark.slow  # each run imports torch, TRL and datasets: seconds


@pytest.mark.parametrize("flags,words", [
    (["--use-vllm"], "vLLM is not installed in this environment"),
    (["--vllm-server", "http://127.0.0.1:9"], "vLLM is not installed in this environment"),
])
def test_vllm_asked_for_where_it_cannot_run_is_refused(flags, words, small_vocab_model, task_traces, tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    done = subprocess.run([sys.executable, "-m", "r1_distill", "grpo", "--model", str(small_vocab_model), "--prompts",
                           str(task_traces / "prompt.jsonl"), "--out", str(tmp_path / "o"), *flags],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
