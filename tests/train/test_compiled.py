"""minilm/train/compiled.py without compiling anything: which loss and optimiser ``[train] compile = true`` trains
with. That compiled training gives the eager run's weights is tests/train/test_trainer.py's
test_compile_setting_trains_like_eager (slow: it compiles)."""

from minilm.kernels.adamw import FusedAdamW
from minilm.kernels.mnrl import fused_mnrl_loss
from minilm.run.registry import make_loss
from minilm.train.compiled import compiled_training


class Model:  # what compiled_training needs of a model
    compiled = 0

    def compile_kernels(self):
        self.compiled += 1


def test_mnrl_in_the_kernels_form_becomes_the_fused_loss_with_its_scale():
    model = Model()
    loss, optimiser = compiled_training(model, make_loss("mnrl", {"scale": 10.0}))
    assert loss.func is fused_mnrl_loss and loss.keywords == {"scale": 10.0}
    assert optimiser is FusedAdamW and model.compiled == 1


def test_mnrl_in_another_form_and_other_losses_keep_the_reference_loss():
    for name, settings in [("mnrl", {"symmetric": True}), ("mnrl", {"similarity": "dot"}), ("cosent", {})]:
        reference = make_loss(name, settings)
        loss, optimiser = compiled_training(Model(), reference)
        assert loss is reference and optimiser is FusedAdamW, (name, settings)
