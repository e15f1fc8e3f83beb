"""The chat format given to any base, before training (r1_distill/chat_format.py): renamed at DeepSeek's ids
where models.yaml maps the base, added with new mean rows elsewhere, ChatML kept where a recipe asks, and a
clear refusal where a declared map does not fit."""


import pytest

from r1_distill.chat_format import format_spec, prepare_model, prepare_tokenizer
from r1_distill.errors import UserError
from r1_distill.registry import load_registry
from r1_distill.tiny import TinySpec, build_tiny_model

pytestmark = pytest.mark.slow
R1 = ["<think>", "</think>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>"]


@pytest.fixture(scope="module")
def qwen_base(fixtures_path):
    return build_tiny_model(TinySpec(architecture="qwen2.5-math"))


def _load(path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(path), AutoConfig.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


def test_a_base_without_a_map_gets_new_tokens_with_mean_rows(qwen_base, tmp_path):
    """A Qwen2 base whose embedding has no spare rows (151,665): no token map fits, so the R1 tokens are added
    and the embedding grows, each new row the mean of the old ones."""
    import torch
    from transformers import AutoModelForCausalLM

    tok, config, _ = _load(qwen_base)
    model = AutoModelForCausalLM.from_pretrained(qwen_base)
    model.resize_token_embeddings(len(tok))  # a base with no spare rows
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    tok, config, model = _load(tmp_path / "base")
    registry = load_registry()
    tok, plan = prepare_tokenizer(tok, config, format_spec(registry, "r1-distill"), registry)
    old_rows = model.get_input_embeddings().weight[:151665].detach().clone()
    prepare_model(model, plan, tok)
    assert plan.token_map is None and not plan.renamed and sorted(plan.added) == sorted(R1)
    assert plan.embedding_rows == (151665, 151665 + len(R1)) == (151665, len(tok))
    weight = model.get_input_embeddings().weight.detach()
    for token in R1:
        assert len(tok.encode(token, add_special_tokens=False)) == 1
        assert torch.allclose(weight[tok.convert_tokens_to_ids(token)], old_rows.mean(0), atol=1e-6)
    assert torch.equal(weight[:151665], old_rows)  # the base's rows untouched
    assert model.config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<｜end▁of▁sentence｜>")
    assert tok.decode(tok.encode("<think>x</think>", add_special_tokens=False), skip_special_tokens=True) == "<think>x</think>"


def test_the_declared_map_on_a_base_it_does_not_fit_exits_2_with_the_reason(qwen_base):
    tok, config, _ = _load(qwen_base)
    registry = load_registry()
    with pytest.raises(UserError, match="token map 'llama3' in models.yaml does not fit this base: the map is for "
                                        "bases with 128256 embedding rows, this one has 151936"):
        prepare_tokenizer(tok, config, format_spec(registry, "r1-distill", token_map="llama3"), registry)


def test_chatml_recipe_keeps_the_base_format_with_thinking_tokens(qwen_base):
    tok, config, _ = _load(qwen_base)
    registry = load_registry()
    tok, plan = prepare_tokenizer(tok, config, format_spec(registry, "chatml-think", pad="<|endoftext|>"), registry)
    assert tok.eos_token == "<|im_end|>" and plan.eos_token_id == 151645  # the base's own token, same row
    for token in ("<think>", "</think>", "<|im_end|>", "<|im_start|>"):
        assert len(tok.encode(token, add_special_tokens=False)) == 1
    from r1_distill.registry import read_template

    tok.chat_template = read_template("chatml-think")
    prompt = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n<think>\n"


def test_registry_rejects_a_token_map_past_its_vocabulary(tmp_path):
    from r1_distill.registry import PACKAGE_REGISTRY

    text = PACKAGE_REGISTRY.read_text().replace('      128014: "</think>"', '      128999: "</think>"')
    (tmp_path / "models.yaml").write_text(text)
    with pytest.raises(UserError, match=r"ids \[128999\] are past vocab_size 128256"):
        load_registry(tmp_path / "models.yaml")
