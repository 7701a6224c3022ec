"""The catalog names every choice once; each name must lead to working code."""

import inspect

import pytest
import torch

from explainaug import catalog
from explainaug.data.registry import load_dataset
from explainaug.explain import Explainer, build_explainer
from explainaug.models import SmallCNN, build_model


@pytest.mark.parametrize("name", catalog.explainer_names())
def test_every_explainer_name_builds_an_explainer(name) -> None:
    options = {"nt_samples": 2} if name == "smoothgrad" else {}
    explainer = build_explainer(name, SmallCNN(num_classes=3, width=4).eval(), **options)
    assert isinstance(explainer, Explainer)


def test_layer_and_signed_names_are_registered_explainers() -> None:
    names = set(catalog.explainer_names())
    assert set(catalog.LAYER_EXPLAINERS) <= names and set(catalog.SIGNED_OPTIONS) <= names
    for name in catalog.LAYER_EXPLAINERS:  # each takes the CAM layer
        assert "layer" in inspect.signature(catalog.resolve(catalog.EXPLAINERS[name])).parameters


@pytest.mark.parametrize("name", catalog.dataset_names(needs_root=False))
def test_every_shipped_dataset_name_loads(name) -> None:
    test = load_dataset(name, "test", size=16, train_size=8)
    image, label = test[0][:2]
    assert image.dtype == torch.float32 and image.ndim == 3 and 0 <= int(label)


def test_every_dataset_reference_resolves_to_a_loader() -> None:
    for entry in catalog.DATASETS.values():
        assert callable(catalog.resolve(entry.load)), entry.load


@pytest.mark.parametrize("name", list(catalog.MODELS))
def test_every_model_name_builds_a_classifier(name) -> None:
    model = build_model(name, 5, width=4)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 5)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown explainer 'gradcamm'; choose one of saliency"):
        build_explainer("gradcamm", SmallCNN(num_classes=3, width=4))
    with pytest.raises(ValueError, match="unknown model 'resnet17'; choose one of small-cnn"):
        catalog.check_model_name("resnet17")
