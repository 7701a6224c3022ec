"""One registry per kind names every choice once; each name leads to working code."""

import inspect

import pytest
import torch

from explainaug.data.load import load_dataset
from explainaug.explain import Explainer, build_explainer
from explainaug.models import SmallCNN, build_model
from explainaug.registry import (
    DATASETS,
    EVALUATORS,
    EXPLAINERS,
    METHODS,
    MODELS,
    Entry,
    MethodEntry,
    Registry,
    check_model_name,
    resolve,
)
from explainaug.train import Method


@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_every_explainer_name_builds_an_explainer(name) -> None:
    options = {"nt_samples": 2} if name == "smoothgrad" else {}
    explainer = build_explainer(name, SmallCNN(num_classes=3, width=4).eval(), **options)
    assert isinstance(explainer, Explainer)


def test_layer_and_signed_facts_match_the_explainers() -> None:
    for name, entry in EXPLAINERS.items():  # a CAM layer exactly where the entry says
        takes = "layer" in inspect.signature(entry.load()).parameters
        assert takes == entry.takes_layer or name in ("smoothgrad",), name
        model = SmallCNN(num_classes=3, width=4)
        if entry.signed:  # the signed options are real options: the maps keep their signs
            signed = build_explainer(name, model, **entry.signed)
            x = torch.rand(2, 3, 16, 16)
            assert bool((signed.attribute(x, 0) < 0).any()), name


@pytest.mark.parametrize("name", DATASETS.names(needs_root=False))
def test_every_shipped_dataset_name_loads(name) -> None:
    test = load_dataset(name, "test", size=16, train_size=8)
    image, label = test[0][:2]
    assert image.dtype == torch.float32 and image.ndim == 3 and 0 <= int(label)
    assert (getattr(test, "masks", None) is not None) == DATASETS[name].masks


def test_every_registered_reference_resolves() -> None:
    for registry in (DATASETS, MODELS, METHODS, EVALUATORS):
        for name, entry in registry.items():
            assert callable(entry.load()), name
    for name, entry in EVALUATORS.items():
        for reference in (entry.table, entry.figure):
            assert reference is None or callable(resolve(reference)), (name, reference)
    for name, entry in METHODS.items():
        assert issubclass(entry.load(), Method), name


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_name_builds_a_classifier(name) -> None:
    model = build_model(name, 5, width=4)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 5)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown explainer 'gradcamm'; choose one of saliency"):
        build_explainer("gradcamm", SmallCNN(num_classes=3, width=4))
    with pytest.raises(ValueError, match="unknown model 'resnet17'; choose one of small-cnn"):
        check_model_name("resnet17")
    with pytest.raises(ValueError, match="unknown method 'sgd'; choose one of ce, supcon"):
        METHODS["sgd"]


def test_a_name_is_registered_once_and_can_be_replaced() -> None:
    colours = Registry("colour", case_sensitive=False)
    colours.register("Red", Entry("builtins:str"))
    assert "red" in colours and colours["RED"].load() is str
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        colours.register("red", Entry("builtins:int"))
    colours.unregister("red")
    colours.register("red", MethodEntry("builtins:int"))
    assert colours["red"].load() is int and colours.names() == ("red",)
