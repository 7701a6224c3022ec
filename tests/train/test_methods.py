"""Each method: trains end to end, uses its explainer as specified, leaves BN statistics alone."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from explainaug._shared import preserved_model_state
from explainaug.augment import SaliencyMask
from explainaug.explain import cam_layer
from explainaug.losses import ExConLoss
from explainaug.models import ContrastiveModel
from explainaug.train import EDDA, CrossEntropy, ExCon, RandomOcclusionControl, SupCon, Trainer


def two_views(x: Tensor) -> Tensor:
    """Deterministic, distinguishable views: view 0 darkened, view 1 flipped."""
    return torch.stack([x * 0.5, x.flip(3)], dim=1)


class FakeExplainer:
    """Known maps: saliency grows with the column index. Records its calls."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.calls: list[tuple[Tensor, Tensor]] = []

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        self.calls.append((x.clone(), target.clone()))
        columns = torch.arange(x.shape[-1], dtype=x.dtype).expand(*x.shape[-2:])
        return columns.expand(x.shape[0], 1, *x.shape[-2:]).clone()


# ------------------------------------------------------------------ end-to-end training


@pytest.mark.parametrize("name", ["cross_entropy", "supcon", "excon", "edda", "random_occlusion"])
def test_method_trains_and_loss_falls(name, make_cnn, make_contrastive, make_loader):
    methods = {
        "cross_entropy": CrossEntropy,
        "supcon": lambda: SupCon(temperature=0.5),
        # background negatives enlarge the denominators as masks start to fail, so the loss is
        # only comparable across epochs without them
        "excon": lambda: ExCon(explain_warmup_epochs=1, temperature=0.5, negative_pair=False),
        "edda": lambda: EDDA(explain_warmup_epochs=1),
        "random_occlusion": lambda: RandomOcclusionControl(explain_warmup_epochs=1),
    }
    contrastive = name in ("supcon", "excon")
    model = make_contrastive() if contrastive else make_cnn()
    torch.manual_seed(0)
    history = Trainer(model, methods[name](), epochs=5, lr=0.05, progress=False, log_every=100).fit(
        make_loader(batch_size=16)
    )
    assert all(torch.isfinite(torch.tensor([record["loss"] for record in history])))
    # the tiny encoder barely moves its contrastive loss in 15 steps; the linear head trained
    # in the alternating epochs must learn on its features
    losses = [record["head_loss" if contrastive else "loss"] for record in history]
    assert losses[-1] < losses[1], losses  # epoch 1 is the last warm-up epoch where there is one


# --------------------------------------------------------------------------------- EDDA


def test_edda_occludes_what_the_explainer_marks(make_cnn):
    model = make_cnn()
    method = EDDA(explainer=(explainer := FakeExplainer(model)))
    method.setup(model)
    fed: list[Tensor] = []
    model.register_forward_pre_hook(lambda module, args: fed.append(args[0].detach().clone()))
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 1, 0])
    loss, _ = method.training_step(model, (x, y), epoch=0)
    loss.backward()

    ((explained, target),) = explainer.calls
    assert torch.equal(explained, x) and torch.equal(target, y)  # clean images, true labels
    clean, nonsalient, salient = fed[-1].chunk(3)  # one fused forward over [x, non, sal]
    assert len(fed) == 1 and torch.equal(clean, x)
    fill = (
        torch.tensor(model.normalize.mean.flatten().tolist()).view(1, 3, 1, 1).expand(4, 3, 16, 3)
    )
    # ratio 0.2 of 256 pixels = 51: the 3 left-most columns (48) and 3 of the 16 pixels tied in
    # column 3 (chosen at random, not by position)
    torch.testing.assert_close(nonsalient[..., :3], fill)
    filled = (nonsalient[..., 3] != x[..., 3]).all(dim=1)  # [B, H]: pixel of column 3 filled
    assert filled.sum(dim=1).tolist() == [3] * 4
    torch.testing.assert_close(
        nonsalient[..., 3][filled[:, None].expand(-1, 3, -1)].view(4, 3, 3), fill[..., :3, 0]
    )
    assert torch.equal(nonsalient[..., 4:], x[..., 4:])
    torch.testing.assert_close(salient[..., -3:], fill)
    assert torch.equal(salient[..., :12], x[..., :12])


def test_random_occlusion_matches_edda_areas_without_explanations(make_cnn):
    model = make_cnn()
    method = RandomOcclusionControl(occlusion_ratio=0.25)
    method.setup(model)
    fed: list[Tensor] = []
    model.register_forward_pre_hook(lambda module, args: fed.append(args[0].detach().clone()))
    x = torch.rand(4, 3, 16, 16) * 0.5 + 0.25
    method.training_step(model, (x, torch.tensor([0, 1, 1, 0])), epoch=0)
    _, nonsalient, salient = fed[-1].chunk(3)
    changed = lambda v: (v != x).any(dim=1).flatten(1).sum(1)  # noqa: E731
    assert changed(salient).tolist() == changed(nonsalient).tolist() == [64] * 4


def test_random_occlusion_copies_per_image_areas_of_a_matched_edda(make_cnn):
    from explainaug.augment import SaliencyOcclusion

    model = make_cnn()
    edda = EDDA(
        explainer=FakeExplainer(model),
        salient=SaliencyOcclusion("salient", threshold=0.5, fill=0.0),
        nonsalient=SaliencyOcclusion("nonsalient", threshold=0.9, fill=0.0),
    )
    method = RandomOcclusionControl(match=edda)
    method.setup(model)
    fed: list[Tensor] = []
    model.register_forward_pre_hook(lambda module, args: fed.append(args[0].detach().clone()))
    x = torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    method.training_step(model, (x, torch.tensor([0, 1])), epoch=0)
    _, nonsalient, salient = fed[-1].chunk(3)
    changed = lambda v: (v != x).any(dim=1).flatten(1).sum(1)  # noqa: E731
    # columns 0..15 normalise to c/15: > 0.5 are 8 columns, <= 0.9 are 14 columns
    assert (
        changed(salient).tolist() == [8 * 16] * 2 and changed(nonsalient).tolist() == [14 * 16] * 2
    )


def test_edda_warmup_is_plain_cross_entropy(make_cnn):
    model = make_cnn()
    method = EDDA(explainer=(explainer := FakeExplainer(model)), explain_warmup_epochs=2)
    method.setup(model)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 1, 0])
    loss, _ = method.training_step(model, (x, y), epoch=1)
    assert not explainer.calls
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(model(x), y))


# -------------------------------------------------------------------------------- ExCon


class Probe(ContrastiveModel):
    """Features = per-channel means; the probe predicts class 0 iff the channel-0 mean > 0.25.

    Records the images of every ``features`` call.
    """

    def __init__(self) -> None:
        super().__init__(
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
            3,
            proj_dim=4,
            num_classes=2,
        )
        self.default_cam_layer = "encoder.0"
        with torch.no_grad():
            self.classifier.weight.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]))
            self.classifier.bias.copy_(torch.tensor([-0.25, 0.25]))
        self.seen: list[Tensor] = []

    def features(self, x: Tensor) -> Tensor:
        self.seen.append(x.detach().clone())
        return super().features(x)


class RecordingExConLoss(ExConLoss):
    def forward(self, features, labels, background):
        self.last = (features.detach(), labels, background)
        return super().forward(features, labels, background)


def excon_batch() -> tuple[Tensor, Tensor, Tensor]:
    """Images whose channel 0 is ``a`` on the left half and 0 on the right; the explainer below
    marks the left half salient, so the masked images keep it and zero the right half."""
    a = torch.tensor([0.9, 0.2, 0.9, 0.2])
    x = torch.rand(4, 3, 8, 8) * 0.1
    x[:, 0, :, :4] = a.view(4, 1, 1)
    x[:, 0, :, 4:] = 0.0
    y = torch.tensor([0, 0, 1, 1])
    # masked channel-0 mean = a / 2 -> probe predicts [0, 1, 0, 1] -> kept = [T, F, F, T]
    return x, y, torch.tensor([True, False, False, True])


class LeftSalient(FakeExplainer):
    def __call__(self, x, target):
        return super().__call__(x, target).flip(-1)


@pytest.mark.parametrize("negative_pair", [True, False])
def test_excon_uses_masked_view_iff_probe_keeps_the_class(negative_pair):
    model = Probe()
    loss_fn = RecordingExConLoss(0.5, check_values=False)
    method = ExCon(
        explainer=(explainer := LeftSalient(model)),
        explain_warmup_epochs=0,
        views=two_views,
        mask=SaliencyMask(threshold=0.5, fill="zero"),
        negative_pair=negative_pair,
        loss=loss_fn,
    )
    method.setup(model)
    x, y, kept = excon_batch()
    loss, metrics = method.training_step(model, (x, y), epoch=3)
    loss.backward()

    assert torch.equal(explainer.calls[0][0], x) and torch.equal(explainer.calls[0][1], y)
    masked = x.clone()
    masked[..., 4:] = 0.0
    probe_input, trained = model.seen  # the probe check, then the one training pass
    assert torch.equal(probe_input, masked)
    views = two_views(x)
    assert torch.equal(trained[:4], views[:, 0])
    expected_second = torch.where(kept.view(-1, 1, 1, 1), masked, views[:, 1])
    assert torch.equal(trained[4:8], expected_second)
    assert metrics["masked_kept"].item() == 0.5

    _, labels, background = loss_fn.last
    if negative_pair:
        assert torch.equal(trained[8:], masked[~kept])  # lost images, once through the encoder
        assert background.tolist() == [False] * 8 + [True] * 4  # ... and twice in the loss
        assert labels[8:].tolist() == y[~kept].tolist() * 2
    else:
        assert trained.shape[0] == 8 and not background.any()


def test_excon_background_rows_are_the_probes_misses_over_training(make_contrastive, make_loader):
    """The default path (alternating head as the probe, background negatives) over 3 epochs:
    at every masking step the loss gets, as background rows, exactly the masked images that
    the head misclassifies (by an independent check of the head), each twice."""
    model = make_contrastive()
    method = ExCon(explain_warmup_epochs=1, temperature=0.5)
    trainer = Trainer(model, method, epochs=3, lr=0.05, progress=False)
    steps: list[dict[str, Tensor]] = []
    mask = method._mask

    def recording_mask(x: Tensor, maps: Tensor) -> Tensor:
        masked = mask(x, maps)
        with torch.no_grad(), preserved_model_state(model):  # as the probe check: train mode
            predicted = model.classifier(model.encoder(masked)).argmax(dim=1)
        steps.append({"masked": masked, "predicted": predicted})
        return masked

    method._mask = recording_mask
    model.encoder.register_forward_pre_hook(
        lambda module, args: (
            steps[-1].setdefault("trained", args[0].detach())
            if steps and args[0].shape[0] > steps[-1]["masked"].shape[0]
            else None
        )
    )
    method.loss.register_forward_hook(
        lambda module, args, out: (
            steps[-1].update(labels=args[1], background=args[2]) if steps else None
        )
    )
    trainer.fit(make_loader(batch_size=16))  # 3 steps per epoch, masking from epoch 2

    assert len(steps) == 6
    missed_any = False
    for step in steps:
        batch = step["masked"].shape[0]
        y = step["labels"][:batch]
        missed = step["predicted"] != y
        missed_any |= bool(missed.any()) and not bool(missed.all())
        assert step["background"].tolist() == [False] * 2 * batch + [True] * 2 * int(missed.sum())
        assert torch.equal(step["labels"][2 * batch :], y[missed].repeat(2))
        assert torch.equal(step["trained"][2 * batch :], step["masked"][missed])
    assert missed_any  # some steps have background rows, and not every image is one


def test_excon_warmup_is_supcon():
    model = Probe()
    method = ExCon(
        explainer=(explainer := LeftSalient(model)),
        explain_warmup_epochs=2,
        views=two_views,
        loss=RecordingExConLoss(0.5, None, check_values=False),
    )
    method.setup(model)
    x, y, _ = excon_batch()
    loss, _ = method.training_step(model, (x, y), epoch=1)
    assert not explainer.calls and len(model.seen) == 1
    reference, _ = SupCon(temperature=0.5, base_temperature=None, views=two_views).training_step(
        model, (x, y), epoch=1
    )
    torch.testing.assert_close(loss, reference)


# ---------------------------------------------------------------- BN running statistics


def bn_state(model: nn.Module) -> dict[str, Tensor]:
    return {
        k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k
    }


@pytest.mark.parametrize("name", ["excon", "edda"])
def test_explanation_passes_leave_bn_statistics_alone(name, make_cnn, make_contrastive):
    """After one step the BN statistics are exactly those of the single training forward."""
    torch.manual_seed(0)
    model = make_contrastive() if name == "excon" else make_cnn()
    method = ExCon(explain_warmup_epochs=0, views=two_views) if name == "excon" else EDDA()
    method.setup(model)  # the default live Grad-CAM
    reference = copy.deepcopy(model)
    trained_module = model.encoder if name == "excon" else model
    inputs: list[Tensor] = []
    trained_module.register_forward_pre_hook(
        lambda m, args: inputs.append(args[0].detach().clone())
    )
    x, y = torch.rand(8, 3, 16, 16), torch.tensor([0, 1] * 4)
    model.train()
    loss, _ = method.training_step(model, (x, y), epoch=0)
    loss.backward()

    # the default layer's probe, the explanation (+ ExCon's probe check), the training forward
    assert len(inputs) == (4 if name == "excon" else 3)
    with torch.no_grad():
        (reference.encoder if name == "excon" else reference).train()(inputs[-1])
    for key, value in bn_state(reference).items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)
    assert model.training


@pytest.mark.parametrize("name", ["excon", "edda"])
def test_explanations_run_in_float32_outside_autocast(name, make_cnn, make_contrastive):
    """Under bf16 autocast the training forward is bf16, the explanation pass float32."""
    model = make_contrastive() if name == "excon" else make_cnn()
    method = ExCon(explain_warmup_epochs=0, views=two_views) if name == "excon" else EDDA()
    method.setup(model)  # the default live Grad-CAM on the last block
    layer = model.get_submodule(cam_layer(model))
    dtypes: list[torch.dtype] = []
    layer.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    x, y = torch.rand(8, 3, 16, 16), torch.tensor([0, 1] * 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        method.training_step(model, (x, y), epoch=0)
    assert dtypes[0] == torch.float32  # the explanation
    assert dtypes[-1] == torch.bfloat16  # the training forward, under autocast


# -------------------------------------------------------------------------- bad set-ups


def test_contrastive_methods_need_a_contrastive_model_or_a_linear_head(make_cnn):
    # a classifier with a linear head is wrapped (tests/models/test_registry.py); without one:
    headless = torch.nn.Sequential(
        torch.nn.Conv2d(3, 2, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    with pytest.raises(TypeError, match="features/project/classify"):
        Trainer(headless, SupCon(), epochs=1)
    assert type(Trainer(make_cnn(), SupCon(), epochs=1).model).__name__ == "ContrastiveModel"


def test_explainer_must_explain_the_trained_model(make_cnn):
    with pytest.raises(ValueError, match="model being trained"):
        Trainer(make_cnn(), EDDA(explainer=FakeExplainer(make_cnn())), epochs=1)


@pytest.mark.parametrize(
    "make_method",
    [
        lambda a: CrossEntropy(augment=a),
        lambda a: EDDA(augment=a),
        lambda a: RandomOcclusionControl(augment=a),
    ],
)
def test_classification_methods_train_on_augmented_images(make_method, make_cnn):
    model = make_cnn()
    method = make_method(lambda images: images.flip(3))
    method.setup(model)
    fed: list[Tensor] = []
    model.register_forward_pre_hook(lambda module, args: fed.append(args[0].detach().clone()))
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 1, 0])
    method.training_step(model, (x, y), epoch=0)
    # the trained forward is the last one; its first B images are the (augmented) clean batch
    assert torch.equal(fed[-1][:4], x.flip(3))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: ExCon(explain_warmup_epochs=True),
            "explain_warmup_epochs must be an int >= 0, got True",
        ),
        (
            lambda: EDDA(explain_warmup_epochs=True),
            "explain_warmup_epochs must be an int >= 0, got True",
        ),
        (
            lambda: RandomOcclusionControl(explain_warmup_epochs=1.5),
            "explain_warmup_epochs must be an int >= 0, got 1.5",
        ),
        (lambda: RandomOcclusionControl(occlusion_ratio=True), "occlusion_ratio must be a number"),
        (lambda: CrossEntropy(label_smoothing=1.0), r"label_smoothing must lie in \[0, 1\)"),
        (lambda: CrossEntropy(label_smoothing=float("nan")), "label_smoothing must lie in"),
    ],
)
def test_counts_and_ranges_reject_bools_and_out_of_range(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


@pytest.mark.parametrize("method", [SupCon, ExCon])
def test_a_temperature_beside_a_given_loss_is_refused_not_ignored(method) -> None:
    from pytorch_metric_learning.losses import SupConLoss as PMLSupConLoss

    with pytest.raises(ValueError, match="temperature=0.5 configures the default loss only"):
        method(loss=PMLSupConLoss(temperature=0.2), temperature=0.5)
    assert method(loss=PMLSupConLoss(temperature=0.2)).loss.temperature == 0.2
    assert method().loss.temperature == 0.1 and method(temperature=0.3).loss.temperature == 0.3
    with pytest.raises(ValueError, match="base_temperature=0.1 configures the default loss only"):
        method(loss=PMLSupConLoss(temperature=0.2), base_temperature=0.1)
    assert (
        method(loss=PMLSupConLoss(temperature=0.2), base_temperature=0.07).loss.temperature == 0.2
    )
