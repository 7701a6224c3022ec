"""Models by name: the package's, torchvision's and timm's, sized for the data, layer names kept."""

import pytest
import torch
import torchvision
from pytorch_grad_cam import GradCAM as PeerGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from explainaug.explain import GradCAM, minmax_normalize
from explainaug.models import ContrastiveModel, adapt, build_model, rebuild_model
from explainaug.train import CrossEntropy, ExCon, Trainer

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _normalised(x):
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_torchvision_model_normalises_inside_and_keeps_its_layer_names() -> None:
    torch.manual_seed(0)
    model = build_model("torchvision:resnet18", 5, mean=MEAN, std=STD).eval()
    assert model.fc.out_features == 5 and model.num_features == 512
    plain = torchvision.models.resnet18(num_classes=5).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "normalize" not in k})
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), plain(_normalised(x)), atol=1e-5)
    # layer names as torchvision's; the same maps as pytorch-grad-cam on the plain network fed
    # normalised images (both min-max normalised at input resolution, as tests/explain do)
    x = torch.rand(3, 3, 128, 128)
    targets = torch.tensor([0, 1, 2])
    ours = minmax_normalize(GradCAM(model, layer="layer4")(x, targets))
    with PeerGradCAM(model=plain, target_layers=[plain.layer4]) as cam:
        theirs = cam(_normalised(x), targets=[ClassifierOutputTarget(i) for i in range(3)])
    theirs = minmax_normalize(torch.from_numpy(theirs)[:, None])
    assert ours.flatten(1).std(dim=1).min() > 0.1  # not a flat map
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def test_local_weights_load_into_the_backbone_and_the_head_is_resized(tmp_path) -> None:
    source = torchvision.models.resnet18()  # 1000 classes, as a downloaded checkpoint
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    model = build_model("torchvision:resnet18", 3, weights=tmp_path / "resnet18.pth")
    assert torch.equal(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert model.fc.out_features == 3
    torch.save({"model": torchvision.models.resnet34().state_dict()}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not fit ResNet: missing .*unexpected"):
        build_model("torchvision:resnet18", 3, weights=tmp_path / "other.pth")


def test_contrastive_models_get_the_feature_size_and_rebuild_from_their_spec() -> None:
    model = build_model("torchvision:mobilenet_v3_small", 4, mean=MEAN, std=STD, contrastive=True)
    assert isinstance(model, ContrastiveModel)
    features = model.features(torch.rand(2, 3, 32, 32))
    assert features.shape == (2, model.classifier.in_features) == (2, 1024)
    again = rebuild_model(model.model_spec)
    again.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(again.eval()(x), model.eval()(x))


def test_timm_models_by_name(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    model = build_model("timm:resnet18", 6, mean=MEAN, std=STD, contrastive=True)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=0)
    assert model.classifier.in_features == reference.num_features
    assert model.features(torch.rand(2, 3, 32, 32)).shape == (2, reference.num_features)
    torch.save(timm.create_model("convnext_atto").state_dict(), tmp_path / "atto.pth")
    classifier = build_model("timm:convnext_atto", 2, weights=tmp_path / "atto.pth")
    assert classifier(torch.rand(1, 3, 32, 32)).shape == (1, 2)
    with pytest.raises(ValueError, match="unknown timm model 'nope'"):
        build_model("timm:nope", 2)


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        logits = self.fc(self.body(x).mean(dim=(2, 3)))
        return {"logits": logits, "aux": logits.detach()}


def test_models_returning_dicts_need_an_output_selector() -> None:
    with pytest.raises(TypeError, match=r"returns a dict \(keys \['logits', 'aux'\]\).*output="):
        adapt(_TwoHeads())(torch.rand(1, 3, 8, 8))
    assert adapt(_TwoHeads(), output="logits")(torch.rand(1, 3, 8, 8)).shape == (1, 2)
    with pytest.raises(TypeError, match="output='scores' does not select"):
        adapt(_TwoHeads(), output="scores")(torch.rand(1, 3, 8, 8))


def test_excon_wraps_a_plain_classifier_and_takes_its_cam_layer_name() -> None:
    backbone = adapt(torchvision.models.resnet18(num_classes=2), mean=MEAN, std=STD)
    head = backbone.fc
    method = ExCon(explain_warmup_epochs=0, cam_layer="layer4")
    trainer = Trainer(backbone, method, epochs=1, lr=0.01, progress=False, device="cpu")
    assert isinstance(trainer.model, ContrastiveModel) and trainer.model.classifier is head
    assert method.live_explainer.layer_name == "encoder.layer4"
    batch = (torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 0, 1]))  # layer4: 2x2 maps
    history = trainer.fit([batch])
    assert history[0]["loss"] > 0
    with pytest.raises(ValueError, match="optimizer=None"):
        Trainer(
            torchvision.models.resnet18(num_classes=2),
            ExCon(),
            epochs=1,
            optimizer=torch.optim.SGD(backbone.parameters(), lr=0.1),
        )
    with pytest.raises(ValueError, match="give an explainer name with cam_layer=, or an explainer"):
        ExCon(explainer=GradCAM(trainer.model, layer="encoder.layer4"), cam_layer="layer4")
    assert CrossEntropy().prepare(backbone) is backbone


@pytest.mark.parametrize(
    ("name", "message"),
    [("keras:resnet", "unknown model 'keras:resnet'"), ("torchvision:nope", "unknown torchvision")],
)
def test_unknown_names(name, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(name, 2)


def test_output_selects_only_from_a_tuple_never_from_the_logits_themselves():
    """GoogLeNet returns (logits, aux2, aux1) in train mode but the logits alone in eval mode:
    output=0 must not pick the first image's row there."""
    model = adapt(torchvision.models.googlenet(num_classes=3, init_weights=False), output=0)
    x = torch.rand(2, 3, 64, 64)
    assert model.train()(x).shape == (2, 3)
    assert model.eval()(x).shape == (2, 3)


@pytest.mark.filterwarnings("ignore:The default weight initialization of GoogleNet")
def test_the_cli_names_the_flag_for_a_model_with_several_outputs(tmp_path, capsys):
    from explainaug.cli import main

    argv = ["train", "--model", "torchvision:googlenet", "--train-size", "16", "--epochs", "1"]
    argv += ["--batch-size", "8", "--device", "cpu", "--no-progress", "--amp", "none"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model-output" in err[0], err
    assert main([*argv, "--out", str(tmp_path / "b"), "--model-output", "0"]) == 0


def test_a_contrastive_head_of_the_wrong_feature_size_is_refused_when_built():
    """A width-4 SmallCNN has 16 features: feat_dim=64 used to fail deep in the first forward."""
    from explainaug.models import ContrastiveModel, SmallCNN

    with pytest.raises(ValueError, match="feat_dim=64 but the encoder SmallCNN gives 16 features"):
        ContrastiveModel(SmallCNN(None, width=4), feat_dim=64, num_classes=3)
    assert ContrastiveModel(SmallCNN(None, width=4), 16, num_classes=3).classifier.in_features == 16


def test_a_timm_encoder_with_a_hidden_head_layer_is_accepted():
    """timm's MobileNetV3 pools 576 features into a 1024-wide head layer: it outputs 1024."""
    timm = pytest.importorskip("timm")
    from explainaug.models import ContrastiveModel

    encoder = timm.create_model("mobilenetv3_small_100", pretrained=False, num_classes=0)
    model = ContrastiveModel(encoder, feat_dim=1024, num_classes=3).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
