"""Shared fixtures. Tiny models are built once per machine (cached under $R1_DISTILL_CACHE, keyed by
the builder's source) and once per session here; tests that need them skip where the tokenizer
fixtures (../shared/fixtures) are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from r1_distill.tiny import TinySpec, build_tiny_model, fixtures_dir

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ARTIFACTS = REPO / "test-artifacts"

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
    return build_tiny_model(TinySpec(architecture="qwen2"))


@pytest.fixture(scope="session")
def tiny_llama(fixtures_path) -> Path:
    return build_tiny_model(TinySpec(architecture="llama"))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
