"""`filter --push-to-hub REPO` without a Hugging Face token (no HF_TOKEN, no stored login) stops at once with one
line naming the fix, before any trace is read or anything written."""

import pytest

from r1_distill.errors import UserError
from r1_distill.teacher.filter import FilterConfig, filter_traces
from r1_distill.traces import TraceRecord, write_traces


def test_push_to_hub_without_a_token_is_refused_before_any_work(tmp_path, monkeypatch):
    from huggingface_hub import constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-login" / "token"))
    traces = tmp_path / "traces.jsonl"
    write_traces(traces, [TraceRecord.from_completion(
        problem_id="p", problem="What is 6*7?", reference_answer="42", sample_index=0, teacher="t", backend="test",
        completion="6*7 = 42.\n</think>\n\n\\boxed{42}", finish_reason="stop")])

    with pytest.raises(UserError) as refused:
        filter_traces(FilterConfig(traces=str(traces), out=str(tmp_path / "out"), push_to_hub="someone/kept-traces"))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("--push-to-hub someone/kept-traces needs a Hugging Face token")
    assert "HF_TOKEN" in message and "hf auth login" in message
    assert not (tmp_path / "out").exists()  # refused before the output folder was made

    # with a token in the environment the same config gets past the check (here: to a source that does not exist)
    monkeypatch.setenv("HF_TOKEN", "hf_placeholder")
    with pytest.raises(UserError, match="no traces at"):
        filter_traces(FilterConfig(traces=str(tmp_path / "absent.jsonl"), out=str(tmp_path / "out"),
                                   push_to_hub="someone/kept-traces"))
