"""Acceptance 2 of issue 23: `r1-distill eval --bench aime24,math500,gpqa-diamond,lcb` on a tiny GGUF and on an
OpenAI-compatible URL (the real server) runs the four benchmarks (local copies of their rows given as NAME=FILE)
and writes one table, its PNG and the model-card rows, with the published R1-Distill figures beside ours."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r1_distill.distill.eval_table import add_card_rows, card_rows
from r1_distill.grading.sandbox import bwrap_path

DATA = Path(__file__).parent / "data"


@pytest.mark.slow
@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap")
def test_one_command_writes_the_table_png_and_card_rows(tiny_gguf, server, data_dir, tmp_path):
    bench = (f"aime24={data_dir / 'aime2024.jsonl'},math500={data_dir / 'math500.jsonl'},"
             f"gpqa-diamond={DATA / 'gpqa_diamond_rows.jsonl'},lcb={DATA / 'code_generation_lite_rows.jsonl'}")
    for name, model in (("gguf", str(tiny_gguf)), ("url", server.url + "/v1")):
        out = tmp_path / name
        run = subprocess.run([sys.executable, "-m", "r1_distill", "eval", "--model", model, "--bench", bench,
                              "--out", str(out), "--samples", "2", "--limit", "1", "--max-tokens", "8"],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        for bench_name, published in (("aime24", "28.9"), ("math500", "83.9"), ("gpqa-diamond", "33.8"), ("lcb", "16.9")):
            line = next(l for l in run.stdout.splitlines() if l.startswith(bench_name + " "))
            assert published in line  # the nearest released student (a tiny model: 1.5B) beside ours
        aime = next(l for l in run.stdout.splitlines() if l.startswith("aime24 "))
        assert "52.7" in aime and "26.7" in aime  # its AIME 2024 cons@64 (R1) and open-r1's lighteval pass@1
        assert "open-r1 pass@1" in run.stdout and "DeepSeek-R1-Distill-Qwen-1.5B, DeepSeek-R1 paper, Table 5" in run.stdout
        table = json.loads((out / "table.json").read_text())
        assert [r["bench"] for r in table["benches"]] == ["aime24", "math500", "gpqa-diamond", "lcb"]
        assert table["released_as"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
        for row in table["benches"]:
            assert row["problems"] == 1 and row["K"] == 2 and set(row["pass@k"]) == {"pass@1", "pass@2"}
            assert (out / row["bench"] / "summary.json").is_file()  # one resumable folder each, as before
        png = (out / "table.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
        rows = (out / "card_rows.md").read_text()
        assert "| aime24 | 1 | 2 |" in rows and "| 28.9 | 52.7 | 26.7 |" in rows and "DeepSeek-R1 paper, Table 5" in rows
    assert json.loads((tmp_path / "url" / "gpqa-diamond" / "summary.json").read_text())["backend"] == "openai"

    # the same rows go into a model card r1-distill wrote, replaced (not repeated) on a later run
    model = tmp_path / "student"
    model.mkdir()
    (model / "README.md").write_text("---\nlibrary_name: transformers\n---\n# student (r1-distill)\n\n## Training\n\nx\n")
    for _ in range(2):
        add_card_rows(model, card_rows(table))
    card = (model / "README.md").read_text()
    assert card.count("## R1 Table 5 benchmarks") == 1 and "| lcb | 1 | 2 |" in card and "## Training" in card
