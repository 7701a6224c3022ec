"""Old public names kept for one release: each one warns and behaves like its new name."""

import pytest
import torch

from explainaug.augment import RandomOcclusion, SaliencyMask
from explainaug.evaluate import model_randomization
from explainaug.evaluate.robustness import fgsm, pgd
from explainaug.explain import Saliency, SmoothGrad
from explainaug.losses import EDDALoss, ExConLoss, SupConLoss
from explainaug.models import SmallCNN
from explainaug.train import RandomOcclusionControl

NAN_FEATURES = torch.tensor([[[float("nan"), 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
LABELS = torch.tensor([0, 1])


@pytest.mark.parametrize("loss_class", [SupConLoss, ExConLoss])
def test_losses_validate_is_check_values(loss_class: type) -> None:
    with pytest.warns(DeprecationWarning, match="validate= is deprecated, use check_values="):
        old = loss_class(0.5, validate=False)
    assert old.check_values is False
    assert loss_class(0.5, check_values=False).check_values is False
    with pytest.raises(ValueError, match="NaN"):
        SupConLoss(0.5)(NAN_FEATURES, LABELS)
    with pytest.raises(TypeError, match="give check_values= only"):
        loss_class(0.5, check_values=False, validate=False)


def test_edda_loss_epsilon_is_label_smoothing() -> None:
    logits = torch.tensor([[0.5, 0.2, 0.1]])
    labels = torch.tensor([0])
    with pytest.warns(DeprecationWarning, match="epsilon= is deprecated, use label_smoothing="):
        old = EDDALoss(salient_target="smooth", epsilon=0.4)
    new = EDDALoss(salient_target="smooth", label_smoothing=0.4)
    assert old.label_smoothing == new.label_smoothing == 0.4
    # the "smooth" target is PyTorch's label smoothing of the true class
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.4)
    torch.testing.assert_close(old.components(logits, logits, logits, labels)["salient"], expected)


@pytest.mark.parametrize("attack", [fgsm, pgd])
def test_attacks_y_is_labels(attack) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2])
    kwargs = {"random_start": False} if attack is pgd else {}
    with pytest.warns(DeprecationWarning, match="y= is deprecated, use labels="):
        old = attack(model, x, y=labels, eps=0.1, **kwargs)
    torch.testing.assert_close(old, attack(model, x, labels=labels, eps=0.1, **kwargs))
    with pytest.raises(TypeError, match="give labels= only"):
        attack(model, x, y=labels, labels=labels, eps=0.1)


def test_model_randomization_make_explainer_is_explainer_factory() -> None:
    model = SmallCNN(num_classes=3, width=4)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    new = model_randomization(model, explainer_factory=Saliency, x=x, similarity="spearman_abs")
    with pytest.warns(DeprecationWarning, match="make_explainer= is deprecated"):
        old = model_randomization(model, make_explainer=Saliency, x=x, similarity="spearman_abs")
    assert old == new


def test_saliency_mask_keep_ratio_is_ratio() -> None:
    maps = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DeprecationWarning, match="keep_ratio= is deprecated, use ratio="):
        old = SaliencyMask(keep_ratio=0.3)
    assert torch.equal(old.mask(maps, (6, 6)), SaliencyMask(ratio=0.3).mask(maps, (6, 6)))


def test_random_occlusion_positional_ratio_warns() -> None:
    x = torch.ones(3, 1, 4, 4)
    with pytest.warns(DeprecationWarning, match=r"RandomOcclusion\(x, ratio=ratio\)"):
        old = RandomOcclusion(fill="zero")(x, torch.tensor([0.25, 0.5, 1.0]))
    assert (old == 0).sum(dim=(1, 2, 3)).tolist() == [4, 8, 16]
    with pytest.warns(DeprecationWarning):
        assert (RandomOcclusion(fill="zero")(x, 0.5) == 0).sum().item() == 24


def test_train_random_occlusion_is_random_occlusion_control() -> None:
    import explainaug.train as train
    import explainaug.train.methods as methods

    for module in (train, methods):
        with pytest.warns(DeprecationWarning, match="RandomOcclusion is deprecated"):
            assert module.RandomOcclusion is RandomOcclusionControl
    with pytest.raises(AttributeError, match="no attribute 'Nonexistent'"):
        _ = train.Nonexistent
    assert "RandomOcclusion" not in train.__all__


def test_smoothgrad_takes_captum_names() -> None:
    model = SmallCNN(num_classes=3, width=4).eval()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DeprecationWarning, match="n_samples= is deprecated, use nt_samples="):
        old = SmoothGrad(Saliency(model), n_samples=3, seed=0)
    with pytest.warns(DeprecationWarning, match="samples_batch_size= is deprecated"):
        chunked = SmoothGrad(Saliency(model), nt_samples=3, samples_batch_size=2, seed=0)
    assert chunked.internal_batch_size == 2
    new = SmoothGrad(Saliency(model), nt_samples=3, seed=0)
    torch.testing.assert_close(old.attribute(x, 1), new.attribute(x, 1))


def test_randomization_y_is_target() -> None:
    """The classes to explain are ``target=``, as in every explainer and evaluator."""
    from explainaug.evaluate import data_randomization

    model = SmallCNN(num_classes=3, width=4)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([2, 0])
    options = {"similarity": "spearman_abs", "include_random_map": False}
    new = model_randomization(model, Saliency, x, target=target, **options)
    with pytest.warns(DeprecationWarning, match="y= is deprecated, use target="):
        old = model_randomization(model, Saliency, x, y=target, **options)
    assert old == new
    new = data_randomization(model, model, Saliency, x, target=target, **options)
    with pytest.warns(DeprecationWarning, match="y= is deprecated, use target="):
        old = data_randomization(model, model, Saliency, x, y=target, **options)
    assert old == new


MOVED = [  # (old module, name, where it lives now)
    ("explainaug.experiment", "METHODS", "explainaug.catalog"),
    ("explainaug.experiment", "CONTROL_TARGETS", "explainaug.catalog"),
    ("explainaug.experiment", "add_experiment_arguments", "explainaug.settings"),
    ("explainaug.experiment", "experiment_from_args", "explainaug.settings"),
    ("explainaug.experiment", "field_help", "explainaug.settings"),
    ("explainaug.experiment", "ARGUMENT_HELP", "explainaug.settings"),
    ("explainaug.explain.registry", "LAYER_EXPLAINERS", "explainaug.catalog"),
    ("explainaug.explain.registry", "SIGNED_OPTIONS", "explainaug.catalog"),
    ("explainaug.data.registry", "DatasetEntry", "explainaug.catalog"),
    ("explainaug.models.registry", "LIBRARIES", "explainaug.catalog"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_names_moved_to_the_catalog_and_settings_still_import(old, name, new) -> None:
    import importlib

    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated, use {new}\.{name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        importlib.import_module(old).nonexistent  # noqa: B018


def test_the_explainer_table_of_factories_still_builds() -> None:
    from explainaug.explain import GradCAM, registry

    with pytest.warns(
        DeprecationWarning, match="EXPLAINERS is deprecated, use .*explainer_factory"
    ):
        table = registry.EXPLAINERS
    assert table["gradcam"] is GradCAM
    assert isinstance(table["smoothgrad"](SmallCNN(num_classes=3, width=4)), SmoothGrad)
