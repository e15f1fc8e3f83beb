"""`min_tokens` and `ignore_eos` (vLLM's fields; llama-server has `ignore_eos`): end-of-generation tokens
cannot be sampled before then, even when a logit bias makes the end of generation the model's only choice."""

import pytest
from llama_cpp import Llama
from openai import BadRequestError, OpenAI


@pytest.fixture(scope="module")
def eos_pushed(tiny_gguf) -> dict:
    eos = Llama(str(tiny_gguf), vocab_only=True, verbose=False).token_eos()
    return {"logit_bias": {str(eos): 100}, "temperature": 0}


def ask(server, **extra):
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=40, extra_body=extra)


def test_a_pushed_end_of_generation_ends_at_once(server, eos_pushed):
    r = ask(server, **eos_pushed)
    assert r.usage.completion_tokens == 1 and r.choices[0].finish_reason == "stop"


def test_min_tokens_holds_the_end_back(server, eos_pushed):
    r = ask(server, min_tokens=12, **eos_pushed)
    assert r.usage.completion_tokens == 13 and r.choices[0].finish_reason == "stop"  # 12, then the end


def test_ignore_eos_generates_max_tokens(server, eos_pushed):
    r = ask(server, ignore_eos=True, **eos_pushed)
    assert r.usage.completion_tokens == 40 and r.choices[0].finish_reason == "length"


def test_min_tokens_over_max_tokens_is_refused(server):
    with pytest.raises(BadRequestError, match="min_tokens 50 exceeds max_tokens 40"):
        ask(server, min_tokens=50)
