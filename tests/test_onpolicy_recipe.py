"""`train --method on-policy --student NAME` takes the student's models.yaml recipe (learning rate, epochs, max
length, batch) as `train` does, under whatever the command line gives; a hub id or folder keeps on-policy's own
defaults. Before, on-policy ignored the recipe (2,048 tokens, lr 5e-5, 1 epoch whatever it said)."""

from r1_distill.distill.onpolicy import OnPolicyConfig
from r1_distill.distill.train import TrainConfig
from r1_distill.registry import load_registry


def test_a_registry_student_brings_its_recipe_under_the_flags():
    recipe = load_registry().students["r1-distill-qwen-7b"].recipe
    config = OnPolicyConfig.from_train(TrainConfig(student="r1-distill-qwen-7b", teacher="r1-distill-qwen-32b",
                                                   traces="kept.jsonl", out="o", method="on-policy", epochs=0.5))
    assert (config.learning_rate, config.max_length, config.effective_batch) == (
        recipe.learning_rate, recipe.max_length, recipe.effective_batch)
    assert recipe.max_length == 32768 and config.epochs == 0.5  # the flag wins over the recipe's epochs


def test_a_folder_student_keeps_on_policy_defaults(tmp_path):
    config = OnPolicyConfig.from_train(TrainConfig(student=str(tmp_path), teacher="t", traces="k", out="o",
                                                   method="on-policy"))
    defaults = OnPolicyConfig(student="s", teacher="t", traces="k", out="o")
    assert (config.learning_rate, config.max_length, config.epochs) == (defaults.learning_rate, defaults.max_length,
                                                                         defaults.epochs)
