"""CDEP as a training method: the loss by hand, the model's mode and BatchNorm statistics left
alone, the single-pixel prior's weights from the training data."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explainaug.train import CDEP, RRR, Trainer


def _linear_model() -> nn.Module:
    linear = nn.Linear(12, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.linspace(-1, 1, 36).view(3, 12))
        linear.bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
    return nn.Sequential(nn.Flatten(), linear)


def test_loss_is_cross_entropy_plus_weighted_penalty_by_hand() -> None:
    model = _linear_model()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 2, 2, generator=generator)
    y = torch.tensor([0, 2, 1, 2])
    objects = torch.zeros(4, 1, 2, 2, dtype=torch.bool)
    objects[:, :, 0, :] = True
    cues = torch.zeros(4, 1, 2, 2, dtype=torch.bool)
    cues[:, :, 1, 1] = True
    weight, bias = model[1].weight, model[1].bias

    def by_hand(region: torch.Tensor) -> torch.Tensor:
        region = region.float().expand_as(x)
        z_rel = (region * x).flatten(1) @ weight.T
        z_irrel = ((1 - region) * x).flatten(1) @ weight.T
        share = z_rel.abs() / (z_rel.abs() + z_irrel.abs())
        rel, irrel = z_rel + share * bias, z_irrel + (1 - share) * bias
        return (rel.exp() / (rel.exp() + irrel.exp())).mean()

    cross_entropy = F.cross_entropy(x.flatten(1) @ weight.T + bias, y)
    for annotation, region in (("cue", cues), ("object", ~objects)):
        method = CDEP(annotation=annotation, penalty_weight=7.0)
        loss, metrics = method.training_step(model, (x, y, objects, cues), epoch=0)
        torch.testing.assert_close(loss, cross_entropy + 7.0 * by_hand(region))
        torch.testing.assert_close(metrics["penalty"], 7.0 * by_hand(region))


def test_official_weights_by_default() -> None:
    assert CDEP().weight == 1000.0
    assert CDEP(annotation="pixels").weight == 5000.0


def test_leaves_mode_and_batchnorm_statistics_as_a_plain_forward_does(make_cnn) -> None:
    """The official code switches to eval() inside the step and stays there; here the model
    keeps its mode and its statistics change exactly as by the cross-entropy forward alone."""
    torch.manual_seed(0)
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 1, 0, 1, 0])
    for annotation in ("pixels", "cue"):
        model = make_cnn().train()
        reference = copy.deepcopy(model)
        cues = torch.zeros(6, 1, 16, 16, dtype=torch.bool)
        cues[..., :4, :4] = True
        batch = (x, y, cues, cues)
        loss, _ = CDEP(annotation=annotation, pixels=3).training_step(model, batch, epoch=0)
        loss.backward()
        reference(x)  # one train-mode forward: the statistics' one update
        assert model.training
        for (name, value), expected in zip(
            model.state_dict().items(), reference.state_dict().values(), strict=True
        ):
            assert torch.equal(value, expected), name
    model = make_cnn().eval()
    CDEP(annotation="pixels").training_step(model, (x, y), epoch=0)[0].backward()
    assert not model.training


def test_pixel_weights_come_from_the_training_data_and_survive_a_resume(
    make_cnn, make_loader
) -> None:
    loader = make_loader()
    method = CDEP(annotation="pixels")
    method.begin(make_cnn(), loader)
    images = torch.cat([batch[0] for batch in loader])
    expected = (images.sum(dim=1) > 0).flatten(1).float().mean(dim=0)
    torch.testing.assert_close(method.annotation.pixel_weights, expected)
    resumed = CDEP(annotation="pixels")
    resumed.load_state_dict(method.state_dict())
    assert torch.equal(resumed.annotation.pixel_weights, expected)


def test_missing_masks_and_bad_settings_are_one_line_errors(make_cnn) -> None:
    batch = (torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"annotation 'cue' needs batches \(x, y, masks, cue_"):
        CDEP(annotation="cue").training_step(make_cnn(), batch, epoch=0)
    with pytest.raises(ValueError, match="annotation must be one of"):
        CDEP(annotation="pixel")
    with pytest.raises(ValueError, match="pixel_draw must be one of"):
        CDEP(annotation="pixels", pixel_draw="step")
    with pytest.raises(ValueError, match="RRR takes annotation cue, object or previous; pixels"):
        RRR(annotation="pixels")


def test_trains_with_the_single_pixel_prior(make_cnn, make_loader) -> None:
    model = make_cnn()
    torch.manual_seed(0)
    method = CDEP(annotation="pixels", penalty_weight=1.0, pixels=2)
    history = Trainer(model, method, epochs=4, lr=0.05, progress=False, log_every=100).fit(
        make_loader(batch_size=16)
    )
    assert method.annotation.pixel_weights is not None  # Trainer called begin
    losses = [record["loss"] for record in history]
    assert losses[-1] < losses[0], losses


def test_built_from_settings() -> None:
    from explainaug.build import build_method
    from explainaug.settings import Experiment, SettingError

    experiment = Experiment(method="cdep", annotation="pixels", pixels=2, pixel_draw="image")
    method = build_method(experiment.validate())
    assert isinstance(method, CDEP) and method.weight == 5000.0
    assert (method.annotation.pixels, method.annotation.pixel_draw) == (2, "image")
    assert experiment.training_masks is None  # the prior needs no masks
    method = build_method(Experiment(method="cdep", cue_correlation=0.95, penalty_weight=10))
    assert method.annotation.annotation == "cue" and method.weight == 10
    with pytest.raises(SettingError, match="cue needs cue masks"):
        Experiment(method="cdep").validate()
