"""Layers and token reshaping for CAM methods: default layers, ViTs, "did you mean" errors."""

from __future__ import annotations

import warnings

import pytest
import pytorch_grad_cam as pgc
import torch
import torchvision
from captum.attr import LayerGradCam
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from explainaug.explain import (
    SISE,
    AdaSISE,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    GuidedBackprop,
    GuidedGradCAM,
    HiResCAM,
    IntegratedGradCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
    minmax_normalize,
)
from explainaug.explain.cam import tokens_to_maps

CAM_FAMILY = {
    "gradcam": GradCAM,
    "guidedgradcam": GuidedGradCAM,
    "integratedgradcam": lambda model: IntegratedGradCAM(model, n_steps=3),
    "gradcamplusplus": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "scorecam": lambda model: ScoreCAM(model, internal_batch_size=256),
    "sise": lambda model: SISE(model, layers=["blocks.0.norm1", "blocks.1.norm1"]),
    "adasise": lambda model: AdaSISE(model, layers=["blocks.0.norm1", "blocks.1.norm1"]),
}


def seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build().eval()


def tiny_vit(name: str = "vit_tiny_patch16_224", **options) -> nn.Module:
    timm = pytest.importorskip("timm")
    return seeded(
        lambda: timm.create_model(
            name, pretrained=False, num_classes=5, img_size=32, patch_size=8, depth=2, **options
        )
    )


def inputs(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, size, size, generator=generator), torch.tensor([1, 3])


def pytorch_grad_cam_maps(model, layer, x, target, reshape_transform=None) -> torch.Tensor:
    with pgc.GradCAM(
        model=model, target_layers=[layer], reshape_transform=reshape_transform
    ) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in target])
    return minmax_normalize(torch.from_numpy(maps)[:, None])


def test_unknown_layer_suggests_the_closest_names(cnn):
    with pytest.raises(
        ValueError, match=r"unknown layer 'blok3' in CountingCNN; did you mean 'block3'"
    ):
        GradCAM(cnn, "blok3")
    with pytest.raises(ValueError) as error:
        GradCAM(cnn, "zzz")
    assert "see model.named_modules()" in str(error.value)
    assert "block1.0" not in str(error.value), "the message must not list every module"


def test_torchvision_resnet_needs_no_layer():
    model = seeded(lambda: torchvision.models.resnet18(num_classes=5))
    x, target = inputs(64)  # layer4 is 2x2
    cam = GradCAM(model)
    maps = cam(x, target)
    assert cam.layer_name == "layer4"
    theirs = LayerGradCam(model, model.layer4).attribute(x, target=target)
    torch.testing.assert_close(cam.attribute(x, target), theirs, rtol=1e-5, atol=1e-6)
    assert maps.shape == (2, 1, 64, 64)


def test_default_layer_is_the_last_feature_map_before_global_pooling():
    # A plain Sequential: the last 4-D module before nn.AdaptiveAvgPool2d is the last ReLU.
    model = seeded(
        lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(6, 5),
        )
    )
    x, target = inputs()
    cam = GradCAM(model)
    assert cam.layer_name is None  # found on the first call
    torch.testing.assert_close(cam(x, target), GradCAM(model, "3")(x, target))
    assert cam.layer_name == "3"
    # MobileNetV3: "features" holds every map (2x2 at 64 px), then an adaptive pool.
    mobilenet = seeded(lambda: torchvision.models.mobilenet_v3_small(num_classes=5))
    cam = GradCAM(mobilenet)
    cam(*inputs(64))
    assert cam.layer_name == "features"


@pytest.mark.parametrize(("name", "layer"), [("resnet18", "layer4"), ("convnext_atto", "stages.3")])
def test_timm_cnns_use_their_last_feature_module(name, layer):
    timm = pytest.importorskip("timm")
    model = seeded(lambda: timm.create_model(name, pretrained=False, num_classes=5))
    x, target = inputs(96)  # a 3x3 last feature map
    cam = GradCAM(model)
    assert cam.layer_name == layer
    module = dict(model.named_modules())[layer]
    torch.testing.assert_close(
        minmax_normalize(cam(x, target)),
        pytorch_grad_cam_maps(model, module, x, target),
        rtol=0,
        atol=1e-4,
    )


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("vit_tiny_patch16_224", 1),
        ("deit_tiny_distilled_patch16_224", 2),
        ("vit_small_patch14_reg4_dinov2", 5),
    ],
)
def test_vit_gradcam_matches_pytorch_grad_cam_with_its_reshape_transform(name, prefix):
    model = tiny_vit(name)
    x, target = inputs()
    cam = GradCAM(model)
    assert cam.layer_name == "blocks.1.norm1"

    def reshape_transform(tokens: torch.Tensor) -> torch.Tensor:
        grid = tokens[:, prefix:].reshape(tokens.shape[0], 4, 4, tokens.shape[2])
        return grid.permute(0, 3, 1, 2)

    theirs = pytorch_grad_cam_maps(model, model.blocks[-1].norm1, x, target, reshape_transform)
    torch.testing.assert_close(minmax_normalize(cam(x, target)), theirs, rtol=0, atol=1e-4)
    custom = GradCAM(model, reshape=reshape_transform)(x, target)
    torch.testing.assert_close(custom, cam(x, target))


@pytest.mark.parametrize("make", CAM_FAMILY.values(), ids=CAM_FAMILY.keys())
def test_every_cam_method_runs_on_a_vit_with_the_default_reshape(make):
    model = tiny_vit()
    x, target = inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Guided Grad-CAM: a GELU network has no ReLU to guide
        maps = make(model)(x, target)
    assert maps.shape == (2, 1, 32, 32)
    assert bool(torch.isfinite(maps).all()) and bool((maps >= 0).all())
    assert bool((maps.flatten(1).amax(dim=1) > 0).all())


def test_tokens_without_reshape_get_an_error_that_says_what_to_pass():
    model = tiny_vit()
    x, target = inputs()
    with pytest.raises(ValueError, match=r"outputs tokens \(2, 17, 192\) .*pass reshape='auto'"):
        GradCAM(model, reshape=None)(x, target)
    with pytest.raises(TypeError, match="reshape must be 'auto', None or a callable"):
        GradCAM(model, reshape="vit")


def test_tokens_to_maps_drops_prefix_tokens_and_keeps_row_major_order():
    tokens = torch.arange(2 * 7 * 3).view(2, 7, 3)  # 1 prefix token, 2x3 grid, 3 channels
    maps = tokens_to_maps(tokens, prefix_tokens=1, grid=(2, 3))
    assert maps.shape == (2, 3, 2, 3)
    assert torch.equal(maps[1, 2, 1, 0], tokens[1, 1 + 3, 2])
    with pytest.raises(
        ValueError, match=r"6 patch tokens \(after 1 prefix tokens\) do not fill a 2x2"
    ):
        tokens_to_maps(tokens, 1, (2, 2))


def test_guided_backprop_warns_without_relu_modules(cnn):
    with pytest.warns(UserWarning, match="no nn.ReLU module to guide"):
        GuidedBackprop(nn.Sequential(nn.Flatten(), nn.Linear(3, 2), nn.GELU()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GuidedBackprop(cnn)  # ReLU modules: nothing to warn about


def test_the_default_layer_probe_works_on_a_model_in_train_mode():
    """Training explains the live model in train mode: the probe must not feed BatchNorm one
    1x1 sample (torchvision's ResNet-18 at 32 px; BatchNorm refused it before)."""
    model = seeded(lambda: torchvision.models.resnet18(num_classes=5)).train()
    x, target = inputs()
    maps = GradCAM(model)(x, target)
    assert maps.shape == (2, 1, 32, 32) and model.training


def test_the_default_layer_has_spatial_extent():
    """At 32 px torchvision's ResNet-18 pools layer4 to 1x1, whose CAM is one constant: the
    default is then the last layer with a spatial map (layer3, 2x2), the CAM of which varies."""
    model = seeded(lambda: torchvision.models.resnet18(num_classes=5))
    x, target = inputs()
    cam = GradCAM(model)
    maps = cam(x, target)
    assert cam.layer_name == "layer3"
    assert (maps.flatten(1).amax(1) > maps.flatten(1).amin(1)).all()
    larger = GradCAM(model)
    larger(*inputs(64))
    assert larger.layer_name == "layer4"  # 2x2 at 64 px


@pytest.mark.parametrize("explainer", [GradCAM, ScoreCAM, EigenCAM, LayerCAM])
def test_a_layer_with_1x1_maps_is_refused(explainer):
    model = seeded(lambda: torchvision.models.resnet18(num_classes=5))
    with pytest.raises(ValueError, match=r"layer 'layer4' gives 1x1 feature maps for 32x32 images"):
        explainer(model, "layer4")(*inputs())


def test_a_contrastive_wrapper_takes_its_encoders_default_layer():
    """SupCon/ExCon wrap a timm ViT in a ContrastiveModel: the CAM explains the encoder's last
    block (its norm1 tokens), not whatever 4-D tensor a probe meets (attention's k_norm)."""
    from explainaug.models import ContrastiveModel

    vit = tiny_vit()
    wrapped = ContrastiveModel.from_classifier(vit).eval()
    cam = GradCAM(wrapped)
    maps = cam(*inputs())
    assert cam.layer_name == "encoder.blocks.1.norm1"
    assert maps.flatten(1).std(dim=1).min() > 1e-4  # a map, not a constant
