"""`train --method on-policy --student NAME` takes the student's models.yaml recipe as `train` does, under whatever
the command line gives: the lengths, epochs and batch, and its `on_policy` block (Thinking Machines' on-policy
distillation recipe: rollouts of 4,096 tokens, 4 samples a prompt, temperature 1, lr 5e-5 for full weights and 1e-4
for LoRA), not TRL's defaults (128 tokens; GOLD's lr 1e-7); a hub id or folder keeps on-policy's own defaults. A
rollout shorter than the traces' median reasoning gets a warning."""

from types import SimpleNamespace

from r1_distill.distill.onpolicy import OnPolicyConfig, _warn_short_rollouts, median_reasoning_tokens
from r1_distill.distill.train import TrainConfig
from r1_distill.registry import load_registry


def test_a_registry_student_brings_its_recipe_under_the_flags():
    recipe = load_registry().students["r1-distill-qwen-7b"].recipe
    config = OnPolicyConfig.from_train(TrainConfig(student="r1-distill-qwen-7b", teacher="r1-distill-qwen-32b",
                                                   traces="kept.jsonl", out="o", method="on-policy", epochs=0.5))
    assert (config.max_length, config.effective_batch) == (recipe.max_length, recipe.effective_batch)
    assert recipe.max_length == 32768 and config.epochs == 0.5  # the flag wins over the recipe's epochs
    op = recipe.on_policy
    assert (op.max_new_tokens, op.samples_per_prompt, op.temperature) == (4096, 4, 1.0)
    assert (op.learning_rate_lora, op.learning_rate_full) == (1e-4, 5e-5)
    assert (config.max_new_tokens, config.samples_per_prompt, config.temperature, config.learning_rate) == (
        4096, 4, 1.0, 5e-5)  # on-policy trains every weight: the full-weight rate
    flags = OnPolicyConfig.from_train(TrainConfig(student="r1-distill-qwen-7b", teacher="t", traces="k", out="o",
                                                  method="on-policy", max_new_tokens=8192, samples_per_prompt=2,
                                                  learning_rate=1e-5))
    assert (flags.max_new_tokens, flags.samples_per_prompt, flags.learning_rate) == (8192, 2, 1e-5)


def test_every_shipped_student_has_an_on_policy_recipe():
    for name, student in load_registry().students.items():
        assert student.recipe.on_policy.samples_per_prompt >= 1 and student.recipe.on_policy.temperature == 1.0, name


def test_a_folder_student_keeps_on_policy_defaults(tmp_path):
    config = OnPolicyConfig.from_train(TrainConfig(student=str(tmp_path), teacher="t", traces="k", out="o",
                                                   method="on-policy"))
    defaults = OnPolicyConfig(student="s", teacher="t", traces="k", out="o")
    assert (config.learning_rate, config.max_length, config.epochs, config.samples_per_prompt) == (
        defaults.learning_rate, defaults.max_length, defaults.epochs, 1)


def test_rollouts_shorter_than_the_median_reasoning_get_a_warning(capsys):
    def tokenizer(text, add_special_tokens=False):
        return {"input_ids": text.split()}

    records = [SimpleNamespace(reasoning=" ".join(["x"] * n), reasoning_tokens=None) for n in (10, 20, 30)]
    records.append(SimpleNamespace(reasoning="a b", reasoning_tokens=40))  # the record's own count wins
    assert median_reasoning_tokens(records, tokenizer) == 25
    _warn_short_rollouts(records, tokenizer, 24)
    assert "--max-new-tokens 24 is below the traces' median reasoning length (25 tokens)" in capsys.readouterr().out
    _warn_short_rollouts(records, tokenizer, 25)
    assert capsys.readouterr().out == ""
