import pytest
import torch
import torchvision

from explainaug.explain import cam_layer
from explainaug.models import ContrastiveModel, Normalize, SmallCNN, resnet18, resnet50


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(resnet18, torchvision.models.resnet18), (resnet50, torchvision.models.resnet50)],
)
def test_parameter_names_and_sizes_follow_torchvision_except_the_stem(ours, theirs) -> None:
    model, reference = ours(num_classes=100), theirs(num_classes=100)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    reference_shapes = {name: p.shape for name, p in reference.named_parameters()}
    assert shapes.keys() == reference_shapes.keys()
    differing = {name for name in shapes if shapes[name] != reference_shapes[name]}
    assert differing == {"conv1.weight"}  # 3x3 stride-1 stem instead of 7x7
    assert shapes["conv1.weight"] == (64, 3, 3, 3)


@pytest.mark.parametrize("factory", [resnet18, resnet50])
def test_cifar_resolution_is_kept_by_the_stem(factory) -> None:
    model = factory(num_classes=10, width=4).eval()
    activations: dict[str, torch.Size] = {}

    def record(name: str):
        def hook(_module, _inputs, output) -> None:
            activations[name] = output.shape

        return hook

    model.layer1.register_forward_hook(record("layer1"))
    model.layer4.register_forward_hook(record("layer4"))
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert activations["layer1"][-2:] == (32, 32)  # no max-pool, stride-1 stem
    assert activations["layer4"][-2:] == (4, 4)


def test_encoder_mode_returns_features() -> None:
    encoder = resnet50(num_classes=None, width=4)
    assert encoder(torch.rand(2, 3, 32, 32)).shape == (2, encoder.num_features)
    assert encoder.num_features == 4 * 8 * 4


def test_each_relu_module_is_used_once_and_not_inplace() -> None:
    model = resnet18(num_classes=10, width=4)
    calls: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ReLU):
            assert not module.inplace
            module.register_forward_hook(
                lambda m, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1)
            )
    model(torch.rand(1, 3, 32, 32))
    assert calls and set(calls.values()) == {1}


def test_normalize_inside_the_model() -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    x = torch.rand(2, 3, 16, 16)
    plain = SmallCNN(num_classes=3, width=4).eval()
    normalised = SmallCNN(num_classes=3, width=4, mean=mean, std=std).eval()
    normalised.load_state_dict(plain.state_dict(), strict=False)
    by_hand = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(normalised(x), plain(by_hand))


@pytest.mark.parametrize(
    ("mean", "std", "match"),
    [
        ((0.5,), None, "both mean and std"),
        ((0.5, 0.5), (0.2,), "same length"),
        ((0.5,), (0.0,), "std must be > 0"),
    ],
)
def test_normalize_rejects_bad_statistics(mean, std, match) -> None:
    with pytest.raises(ValueError, match=match):
        Normalize(mean, std)


def test_contrastive_model_heads() -> None:
    model = ContrastiveModel(
        SmallCNN(num_classes=None, width=4), feat_dim=16, proj_dim=8, num_classes=5
    )
    assert cam_layer(model) == "encoder.block3"
    x = torch.rand(3, 3, 32, 32)
    features = model.features(x)
    projection = model.project(features)
    torch.testing.assert_close(projection.norm(dim=1), torch.ones(3))
    model.classify(features).sum().backward()
    assert all(
        p.grad is None for p in model.encoder.parameters()
    )  # probe trains on detached features
    assert model.classifier.weight.grad is not None
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()  # forward() is an ordinary classifier: gradients reach the encoder
    assert model.encoder.block1[0].weight.grad is not None
