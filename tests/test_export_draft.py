"""`export --draft FILE.gguf` names the model's draft: refused at once when the file is not a GGUF, checked
against every exported file's vocabulary, recorded in the report; `chat --model FILE.gguf:draft=DRAFT.gguf`
serves the model with it."""

import httpx
import pytest

from r1_distill.errors import UserError
from r1_distill.export.pipeline import ExportConfig, _check_draft, export_gguf

pytestmark = pytest.mark.slow


def test_a_missing_draft_stops_the_export_before_any_work(hub_student_qwen2, tmp_path):
    with pytest.raises(UserError, match="--draft .*not a .gguf file"):
        export_gguf(ExportConfig(model=str(hub_student_qwen2), out=str(tmp_path / "out"), draft=str(tmp_path / "no.gguf")))
    assert not (tmp_path / "out" / "export_report.json").exists()


def test_the_draft_is_checked_and_recorded(tiny_gguf, tiny_gguf_q8):
    report = {}
    _check_draft(str(tiny_gguf_q8), {"Q4_K_M": tiny_gguf}, report)
    assert report["draft"] == str(tiny_gguf_q8.resolve())


def test_chat_serves_a_model_with_its_draft(tiny_gguf, tiny_gguf_q8):
    from r1_distill.ui.models import LocalServer

    server = LocalServer(f"{tiny_gguf}:draft={tiny_gguf_q8}", ctx=512)
    try:
        server.wait_ready(120)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 24, "temperature": 0}
        usage = httpx.post(server.url + "/chat/completions", json=body, timeout=120).json()["usage"]
        assert "accepted_prediction_tokens" in usage["completion_tokens_details"]
    finally:
        server.stop()
    with pytest.raises(UserError, match="does not exist"):
        LocalServer(f"{tiny_gguf}:draft=/nowhere/d.gguf")
