"""The package's Protocols accept any object of the right shape and ship with py.typed."""

from importlib.resources import files

import torch
from torch import nn

from explainaug.augment import RandomOcclusion, SaliencyMask, SaliencyOcclusion
from explainaug.explain import GradCAM, SmoothGrad
from explainaug.models import SmallCNN
from explainaug.typing import ExplainerLike, MaskTransform, RatioOcclusion


class CaptumStyle:
    """A foreign explainer: a model attribute and a call on (x, target)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, x: torch.Tensor, target=None) -> torch.Tensor:
        return x.abs().sum(dim=1, keepdim=True)


def test_explainers_of_any_origin_fit_the_protocol() -> None:
    model = SmallCNN(num_classes=3, width=4)
    for explainer in (GradCAM(model), SmoothGrad(GradCAM(model)), CaptumStyle(model)):
        assert isinstance(explainer, ExplainerLike)
    assert not isinstance(lambda x, target=None: x, ExplainerLike)  # no model to explain


def test_augmentations_fit_their_protocols() -> None:
    assert isinstance(SaliencyMask(), MaskTransform)
    assert isinstance(SaliencyOcclusion(), MaskTransform)
    assert isinstance(RandomOcclusion(), RatioOcclusion)
    assert not isinstance(nn.Identity(), MaskTransform)  # no keep mask


def test_package_ships_py_typed() -> None:
    assert files("explainaug").joinpath("py.typed").is_file()
