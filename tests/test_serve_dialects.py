"""Every client's dialect, through the official openai client against the real server: the thinking
apart under both field names (Chat Completions) and as a reasoning item (Responses API), streaming
and not; thinking switched off; logprobs, n, penalties and json_schema work, or are refused with 400."""

import json

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow

HI = [{"role": "user", "content": "What is 2+2?"}]
YES_NO = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"],
          "additionalProperties": False}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def extra(obj) -> dict:
    return obj.model_extra or {}


def test_chat_returns_thinking_under_both_names(client):
    resp = client.chat.completions.create(model="m", messages=HI, max_tokens=20, seed=3,
                                          extra_body={"thinking_budget_tokens": 6})
    msg = resp.choices[0].message
    assert extra(msg)["reasoning"] and extra(msg)["reasoning"] == extra(msg)["reasoning_content"]
    assert msg.content and "</think>" not in msg.content
    stream = client.chat.completions.create(model="m", messages=HI, max_tokens=20, seed=3, stream=True,
                                            extra_body={"thinking_budget_tokens": 6})
    reasoning, reasoning_content, content = "", "", ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        reasoning += extra(delta).get("reasoning") or ""
        reasoning_content += extra(delta).get("reasoning_content") or ""
        content += delta.content or ""
    assert reasoning == reasoning_content == extra(msg)["reasoning"] and content == msg.content  # same seed, same text


def test_either_reasoning_field_sent_back_is_accepted_and_dropped(client):
    thought = "two and two make four, " * 8

    def prompt_tokens(assistant: dict) -> int:
        resp = client.chat.completions.create(model="m", max_tokens=3, messages=[
            *HI, {"role": "assistant", **assistant}, {"role": "user", "content": "and 3+3?"}])
        assert resp.choices[0].finish_reason == "length"
        return resp.usage.prompt_tokens

    without = prompt_tokens({"content": "4"})
    assert prompt_tokens({"content": thought + "4"}) > without + 20  # the count would show the thought, were it kept
    for field in ("reasoning", "reasoning_content"):
        assert prompt_tokens({"content": "4", field: thought}) == without, field


def test_thinking_off(client):
    for kwargs in ({"reasoning_effort": "none"}, {"extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}):
        resp = client.chat.completions.create(model="m", messages=HI, max_tokens=12, seed=1, **kwargs)
        assert resp.usage.completion_tokens_details.reasoning_tokens == 0
        assert extra(resp.choices[0].message)["reasoning"] == "" and resp.choices[0].message.content


def test_responses_api_reasoning_item(client):
    resp = client.responses.create(model="m", input="What is 2+2?", max_output_tokens=20,
                                   extra_body={"thinking_budget_tokens": 6, "seed": 3})
    kinds = [item.type for item in resp.output]
    assert kinds == ["reasoning", "message"], kinds
    reasoning = resp.output[0].content[0]
    assert reasoning.type == "reasoning_text" and reasoning.text and "</think>" not in reasoning.text
    assert resp.output_text and resp.usage.output_tokens_details.reasoning_tokens == 6
    assert resp.usage.output_tokens == 20 and resp.status == "incomplete"

    events = list(client.responses.create(model="m", input="What is 2+2?", max_output_tokens=20, stream=True,
                                          extra_body={"thinking_budget_tokens": 6, "seed": 3}))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.incomplete"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    streamed = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    answer = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed == reasoning.text and answer == resp.output_text
    assert types.index("response.reasoning_text.done") < types.index("response.output_text.delta")
    final = events[-1].response
    assert final.usage.output_tokens_details.reasoning_tokens == 6 and final.output[0].type == "reasoning"


def test_responses_stream_helper_with_json_schema(client):
    with client.responses.stream(model="m", input="yes or no?", max_output_tokens=40, reasoning={"effort": "none"},
                                 text={"format": {"type": "json_schema", "name": "yn", "schema": YES_NO}}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert json.loads(final.output_text)["answer"] in ("yes", "no")


def test_json_schema_and_json_object(client):
    for kwargs in ({"reasoning_effort": "none"}, {"extra_body": {"thinking_budget_tokens": 4}}):
        resp = client.chat.completions.create(
            model="m", messages=HI, max_tokens=60, seed=2, **kwargs,
            response_format={"type": "json_schema", "json_schema": {"name": "yn", "schema": YES_NO}})
        assert json.loads(resp.choices[0].message.content)["answer"] in ("yes", "no"), resp.choices[0].message.content
    resp = client.chat.completions.create(model="m", messages=HI, max_tokens=12, seed=2, reasoning_effort="none",
                                          response_format={"type": "json_object"})
    assert resp.choices[0].message.content.lstrip().startswith("{")
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client.chat.completions.create(model="m", messages=HI, response_format={"type": "regex", "regex": "a+"})


def test_logprobs_chat_and_completions_streaming_too(client):
    resp = client.chat.completions.create(model="m", messages=HI, max_tokens=10, seed=1, logprobs=True, top_logprobs=3,
                                          extra_body={"thinking_budget_tokens": 4})
    lp = resp.choices[0].logprobs
    thinking = extra(lp)["reasoning"]  # the thinking's tokens, apart from the answer's
    assert len(thinking) == resp.usage.completion_tokens_details.reasoning_tokens == 4
    assert len(thinking) + len(lp.content) == resp.usage.completion_tokens
    entries = [(e.logprob, [t.logprob for t in e.top_logprobs]) for e in lp.content]
    entries += [(e["logprob"], [t["logprob"] for t in e["top_logprobs"]]) for e in thinking]
    for logprob, top in entries:
        assert logprob <= 0 and len(top) == 3 and top == sorted(top, reverse=True)
        assert top[0] >= logprob - 1e-6  # the best alternative is at least as likely as the sampled token
    stream = client.chat.completions.create(model="m", messages=HI, max_tokens=8, seed=1, logprobs=True, top_logprobs=2,
                                            stream=True, reasoning_effort="none")
    streamed = [e for c in stream if c.choices and c.choices[0].logprobs for e in (c.choices[0].logprobs.content or [])]
    assert len(streamed) == 8 and all(len(e.top_logprobs) == 2 for e in streamed)
    greedy = client.completions.create(model="m", prompt="Once upon a time", max_tokens=6, temperature=0, logprobs=2)
    lp = greedy.choices[0].logprobs
    assert len(lp.tokens) == 6 and "".join(lp.tokens) == greedy.choices[0].text
    for token, top in zip(lp.tokens, lp.top_logprobs):
        assert max(top.values()) == pytest.approx(top.get(token, -1e9), abs=1e-6)  # greedy picks the most likely
    chunks = list(client.completions.create(model="m", prompt="Once upon a time", max_tokens=6, temperature=0,
                                            logprobs=2, stream=True))
    assert [t for c in chunks for t in (c.choices[0].logprobs.tokens if c.choices and c.choices[0].logprobs else [])] == lp.tokens


def test_n_choices(client):
    resp = client.chat.completions.create(model="m", messages=HI, max_tokens=6, n=3, seed=5)
    assert [c.index for c in resp.choices] == [0, 1, 2] and resp.usage.completion_tokens == 18
    texts = {extra(c.message)["reasoning"] for c in resp.choices}
    assert len(texts) > 1  # different seeds per choice
    stream = client.chat.completions.create(model="m", messages=HI, max_tokens=6, n=2, seed=5, stream=True)
    finishes = {c.choices[0].index: c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason}
    assert finishes == {0: "length", 1: "length"}


def test_penalties_go_through_llama_cpp(client):
    base = dict(model="m", prompt="the the the the the", max_tokens=24, temperature=0)
    plain = client.completions.create(**base).choices[0].text
    for kwargs in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}, {"extra_body": {"repetition_penalty": 5.0}}):
        penalised = client.completions.create(**base, **kwargs).choices[0].text
        assert penalised != plain, kwargs
        words = penalised.split()
        assert len(set(words)) >= len(set(plain.split())), (kwargs, plain, penalised)
    with pytest.raises(openai.BadRequestError, match="frequency_penalty"):
        client.completions.create(**base, frequency_penalty=3)


def test_cors_is_an_option():
    from fastapi.testclient import TestClient

    from r1_distill.serve import ServerConfig, create_app

    def no_model():
        raise RuntimeError("no model needed")

    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,authorization"}
    with TestClient(create_app(ServerConfig(model="x.gguf", cors_origins=["http://localhost:3000"], api_key="k"),
                               engine_factory=no_model)) as http:
        r = http.options("/v1/chat/completions", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
    with TestClient(create_app(ServerConfig(model="x.gguf"), engine_factory=no_model)) as http:
        r = http.options("/v1/chat/completions", headers=preflight)
        assert "access-control-allow-origin" not in r.headers


def test_unsupported_fields_are_refused(server):
    for body in ({"messages": HI, "tools": [{"type": "function", "function": {"name": "f"}}]},
                 {"messages": HI, "audio": {"voice": "x"}}, {"messages": HI, "prediction": {"type": "content"}}):
        r = httpx.post(server.url + "/v1/chat/completions", json=body)
        assert r.status_code == 400, body
