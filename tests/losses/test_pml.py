"""pytorch-metric-learning losses in SupCon and ExCon; background rows as negatives only."""

import pytest
import torch
from pytorch_metric_learning import losses as pml

from explainaug.losses import ExConLoss, SupConLoss
from explainaug.losses.pml import background_pairs
from explainaug.models import ContrastiveModel, SmallCNN
from explainaug.train import ExCon, SupCon

TAU = 0.2


def _rows(n=10, d=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, d, generator=generator)
    labels = torch.randint(0, 3, (n,), generator=generator)
    return rows, labels


@pytest.mark.parametrize("background_anchor", [False, True])
@pytest.mark.parametrize("n_background", [0, 1, 3])
def test_pml_supcon_with_background_pairs_equals_excon_loss(n_background, background_anchor):
    rows, labels = _rows()
    background = torch.arange(10) >= 10 - n_background
    ours = ExConLoss(TAU, base_temperature=TAU, background_anchor=background_anchor)
    pairs = background_pairs(labels, background, background_anchor)
    theirs = pml.SupConLoss(temperature=TAU)(rows, labels, indices_tuple=pairs)
    torch.testing.assert_close(ours(rows, labels, background), theirs, rtol=1e-5, atol=1e-6)


def test_background_pairs_hand_checked():
    # rows 0, 1 (label 0), 2 (label 1), 3 (background from label 0)
    a1, p, a2, n = background_pairs(torch.tensor([0, 0, 1, 0]), torch.tensor([0, 0, 0, 1]) > 0)
    assert sorted(zip(a1.tolist(), p.tolist(), strict=True)) == [(0, 1), (1, 0)]
    negatives = sorted(zip(a2.tolist(), n.tolist(), strict=True))
    assert negatives == [(0, 2), (0, 3), (1, 2), (1, 3), (2, 0), (2, 1), (2, 3)]


def _model():
    torch.manual_seed(0)
    return ContrastiveModel(SmallCNN(None, width=4), 16, proj_dim=8, num_classes=2)


@pytest.mark.parametrize("with_background", [False, True])
def test_excon_with_pml_supcon_equals_excon_with_the_package_loss(with_background):
    model = _model()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1])
    images = torch.cat([x, x.flip(3)] + ([x[:2] * 0.5] if with_background else []))
    background_labels = y[:2] if with_background else None
    results = []
    for loss in (ExConLoss(TAU, base_temperature=TAU), pml.SupConLoss(temperature=TAU)):
        method = ExCon(loss=loss, explain_warmup_epochs=0)
        total, metrics = method.contrastive_step(model, images, y, 2, background_labels)
        results.append(metrics["contrastive_loss"])
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_supcon_with_pml_supcon_equals_the_package_loss():
    model = _model()
    two_views = lambda x: torch.stack([x, x.flip(3)], dim=1)  # noqa: E731
    batch = (torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 0, 1, 1, 0]))
    ours = SupCon(views=two_views, loss=SupConLoss(TAU, base_temperature=TAU))
    theirs = SupCon(views=two_views, loss=pml.SupConLoss(temperature=TAU))
    torch.testing.assert_close(
        ours.training_step(model, batch, 0)[0], theirs.training_step(model, batch, 0)[0]
    )


def test_losses_that_cannot_take_negatives_only_are_refused():
    arcface = pml.ArcFaceLoss(num_classes=2, embedding_size=8)
    with pytest.raises(TypeError, match="ArcFaceLoss cannot take ExCon's background rows"):
        ExCon(loss=arcface)
    with pytest.raises(TypeError, match="must be an ExConLoss or a pair-based"):
        ExCon(loss=torch.nn.MSELoss())
    assert ExCon(loss=arcface, negative_pair=False).loss is arcface
