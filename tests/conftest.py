"""Shared fixtures. Tiny models are built once per machine (cached under $R1_DISTILL_CACHE, keyed by
the builder's source) and once per session here; tests that need them skip where the tokenizer
fixtures (../shared/fixtures) are absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from r1_distill.tiny import TinySpec, build_hub_student, build_tiny_model, fixtures_dir
from support import ARTIFACTS, CHROMIUM_ARGS, SHARED, RunningServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fixtures_path() -> Path:
    found = fixtures_dir()
    if found is None:
        pytest.skip("tokenizer fixtures absent: put shared/fixtures beside the checkout or set R1_DISTILL_FIXTURES")
    return found


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = SHARED / "data"
    if not (path / "math500.jsonl").exists():
        pytest.skip("benchmark data absent: put shared/data beside the checkout")
    return path


@pytest.fixture(scope="session")
def tiny_qwen2(fixtures_path) -> Path:
    """Stands for a released R1-Distill-Qwen (R1's tokens already in place): only for that path's tests."""
    return build_tiny_model(TinySpec(architecture="qwen2"))


@pytest.fixture(scope="session")
def tiny_llama(fixtures_path) -> Path:
    """Stands for a released R1-Distill-Llama: only for that path's tests."""
    return build_tiny_model(TinySpec(architecture="llama"))


@pytest.fixture(scope="session")
def hub_student_qwen2(fixtures_path) -> Path:
    """Qwen2.5-Math's tokenizer as the hub ships it, given R1's format by `train`'s preparation (untrained)."""
    return build_hub_student("qwen2.5-math")


@pytest.fixture(scope="session")
def hub_student_llama(fixtures_path) -> Path:
    """Llama 3.3 Instruct's tokenizer as the hub ships it, given R1's format by `train`'s preparation."""
    return build_hub_student("llama-3.3-instruct")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory, hub_student_qwen2) -> Path:
    """A student from a hub Qwen2.5 base exported to Q4_K_M through `r1-distill export` (verified), once a session."""
    from r1_distill.export.pipeline import ExportConfig, export_gguf

    out = tmp_path_factory.mktemp("tiny-gguf")
    export_gguf(ExportConfig(model=str(hub_student_qwen2), out=str(out), quants=["Q4_K_M", "Q8_0"], name="tiny-qwen2",
                             greedy_tokens=4))
    return out / "tiny-qwen2-Q4_K_M.gguf"


@pytest.fixture(scope="session")
def tiny_gguf_q8(tiny_gguf) -> Path:
    """The same student's Q8_0 (exported beside the Q4_K_M): a draft model that shares its vocabulary."""
    return tiny_gguf.with_name("tiny-qwen2-Q8_0.gguf")


@pytest.fixture(scope="session")
def server(tiny_gguf):
    srv = RunningServer(tiny_gguf, "--parallel", "4", "--ctx", "1024", "--max-queue", "64")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def small_vocab_model(tmp_path_factory) -> Path:
    """A random-weight Llama with the demo's 640-piece SentencePiece vocabulary: trains in seconds on CPU,
    and needs no shared/ fixtures (its vocabulary is learned from the demo's task generator)."""
    from r1_distill.demo.models import DemoModelSpec, build_model, build_tokenizer
    from r1_distill.demo.task import cold_start_traces, make_splits

    root = tmp_path_factory.mktemp("small-vocab")
    rows = cold_start_traces(make_splits({"train": 400, "prompt": 0, "heldout": 0})["train"], slip_rate=0.0)
    tokenizer = build_tokenizer([x for r in rows for x in (r["problem"].text, r["reasoning"], r["answer"])], root / "tokenizer")
    return build_model(DemoModelSpec(hidden_size=64, num_hidden_layers=2), tokenizer, root / "model")


@pytest.fixture(scope="session")
def task_traces(tmp_path_factory) -> Path:
    """200 scripted traces of the demo task (kept.jsonl) and their problems as a prompt file."""
    from r1_distill.demo.task import cold_start_traces, make_splits
    from r1_distill.traces import TraceRecord, write_traces

    root = tmp_path_factory.mktemp("task")
    splits = make_splits({"train": 200, "prompt": 32, "heldout": 16})
    records = [TraceRecord.from_completion(
        problem_id=r["problem"].id, problem=r["problem"].text, prompt=r["problem"].text, sample_index=0,
        reference_answer=str(r["problem"].answer), teacher="script", backend="script", kept=True, finish_reason="stop",
        completion=f"{r['reasoning']}\n</think>\n\n{r['answer']}") for r in cold_start_traces(splits["train"], 0.0)]
    write_traces(root / "kept.jsonl", records)
    for split in ("prompt", "heldout"):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(p.as_prompt_row()) + "\n" for p in splits[split]))
    return root


@pytest.fixture
def chromium():
    """Debian's Chromium driven by Playwright (no browser download); skips where it is not installed."""
    import shutil

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (python3 dev.py test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
