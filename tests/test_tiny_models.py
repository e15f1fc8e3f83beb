"""The tiny test students look like real R1-Distill students to transformers."""

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_tiny_student_has_r1_tokens_and_template(arch, request):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = request.getfixturevalue(f"tiny_{arch}")
    tok = AutoTokenizer.from_pretrained(path)
    for special in ["<think>", "</think>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"]:
        ids = tok.encode(special, add_special_tokens=False)
        assert len(ids) == 1, (special, ids)
    assert tok.eos_token == "<｜end▁of▁sentence｜>" and tok.pad_token_id != tok.eos_token_id
    # `<think>` stays visible when decoding (it is not a special token in R1-Distill)
    think = tok.convert_tokens_to_ids("<think>")
    assert "<think>" in tok.decode([think], skip_special_tokens=True)
    prompt = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<｜begin▁of▁sentence｜><｜User｜>2+2?") and prompt.endswith("<｜Assistant｜><think>\n")
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.vocab_size == len(tok)
    assert model.config.head_dim if hasattr(model.config, "head_dim") else True
    assert model.generation_config.eos_token_id == tok.eos_token_id
