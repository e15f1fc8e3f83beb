"""POST /tokenize as vLLM (`prompt`, `add_special_tokens`) and llama-server (`content`, `add_special`) take it:
the ids a text prompt of /v1/completions becomes, R1's markers parsed as the special tokens they are.
On-policy distillation reads it to check that a URL teacher tokenizes as the student does."""

import httpx
from transformers import AutoTokenizer


def test_tokenize_gives_the_students_ids_in_both_dialects(server, hub_student_qwen2):
    text = "<｜User｜>What is 12 + 7?<｜Assistant｜><think>\nnaïve\n</think>\n\n\\boxed{19}"
    expected = AutoTokenizer.from_pretrained(hub_student_qwen2)(text, add_special_tokens=False)["input_ids"]
    vllm = httpx.post(server.url + "/tokenize", json={"model": "x", "prompt": text, "add_special_tokens": False})
    llama = httpx.post(server.url + "/tokenize", json={"content": text})
    assert vllm.status_code == 200 and llama.status_code == 200, (vllm.text, llama.text)
    assert vllm.json()["tokens"] == llama.json()["tokens"] == expected
    assert vllm.json()["count"] == len(expected) and vllm.json()["max_model_len"] == 1024


def test_tokenize_refuses_what_it_does_not_do(server):
    for body, words in [({}, "one of them"), ({"prompt": "a", "content": "b"}, "one of them"),
                        ({"prompt": "a", "add_special_tokens": True}, "add_special_tokens"),
                        ({"content": "a", "with_pieces": True}, "with_pieces")]:
        r = httpx.post(server.url + "/tokenize", json=body)
        assert r.status_code == 400 and words in r.json()["error"]["message"], (body, r.text)
