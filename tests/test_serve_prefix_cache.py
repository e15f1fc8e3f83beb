"""A slot keeps its KV cache after a request: the next request that shares the prompt's prefix (a chat's
history, a repeated system prompt) is not prefilled again, and its output is the same as without it.
A long prompt pushed out of its slot is kept in RAM and restored when it is asked for again."""

import httpx
import pytest

from support import RunningServer

pytestmark = pytest.mark.slow

SYSTEM = "You are a careful assistant who checks every step. " * 40


@pytest.fixture(scope="module")
def one_slot(tiny_gguf):
    srv = RunningServer(tiny_gguf, "--parallel", "1", "--ctx", "1024", "--threads", "1")
    yield srv
    srv.stop()


def ask(client, user, **kwargs):
    return client.chat.completions.create(model="m", max_tokens=8, temperature=0, reasoning_effort="none",
                                          messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                                          **kwargs)


def test_repeated_prefix_is_reused_and_gives_the_same_tokens(one_slot):
    from openai import OpenAI

    client = OpenAI(base_url=one_slot.url + "/v1", api_key="x", max_retries=0, timeout=120)
    cold = client.completions.create(model="m", prompt="unrelated text to fill the slot", max_tokens=2, temperature=0)
    assert cold.usage.prompt_tokens_details.cached_tokens <= 1
    first = ask(client, "What is 7 times 6?")
    assert first.usage.prompt_tokens_details.cached_tokens <= 2  # nothing shared with the unrelated prompt
    again = ask(client, "What is 7 times 6?")
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    assert again.choices[0].message.content == first.choices[0].message.content
    other = ask(client, "What is 9 minus 4?")
    shared = other.usage.prompt_tokens_details.cached_tokens
    assert shared >= 100, shared  # the system prompt's tokens came from the cache
    client.completions.create(model="m", prompt="something else entirely", max_tokens=2, temperature=0)  # evict
    restored = ask(client, "What is 9 minus 4?")  # the long prompt comes back from RAM, not from a prefill
    assert restored.usage.prompt_tokens_details.cached_tokens == restored.usage.prompt_tokens - 1
    assert restored.choices[0].message.content == other.choices[0].message.content
    metrics = httpx.get(one_slot.url + "/metrics").text
    assert "r1_distill_prompt_cache_restores_total 1" in metrics
