import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import SupConLoss as PMLSupConLoss

from explainaug.losses import SupConLoss


def supcontrast_reference(
    features: torch.Tensor, labels: torch.Tensor, temperature: float, base_temperature: float
) -> torch.Tensor:
    """HobbitLong/SupContrast's loss (contrast_mode='all'), written out with plain exp/log.

    Anchors with no positive are dropped here too (SupContrast after PR #142 counts them as 0;
    the comparison below only uses batches where every anchor has a positive, except where
    stated).
    """
    batch, views, _ = features.shape
    z = F.normalize(features, dim=2).transpose(0, 1).reshape(batch * views, -1)
    row_labels = labels.repeat(views)
    same = (row_labels[:, None] == row_labels[None, :]).to(z.dtype)
    not_self = 1 - torch.eye(batch * views, dtype=z.dtype)
    positives = same * not_self
    similarity = torch.exp(z @ z.T / temperature) * not_self
    log_prob = torch.log(torch.exp(z @ z.T / temperature)) - torch.log(
        similarity.sum(1, keepdim=True)
    )
    mean_log_prob_pos = (positives * log_prob).sum(1) / positives.sum(1)
    keep = positives.sum(1) > 0
    return -(temperature / base_temperature) * mean_log_prob_pos[keep].mean()


@pytest.mark.parametrize("views", [1, 2, 4])
@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5])
def test_matches_pytorch_metric_learning_and_supcontrast(views: int, temperature: float) -> None:
    generator = torch.Generator().manual_seed(views)
    features = torch.randn(12, views, 16, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2] * 4)
    ours = SupConLoss(temperature=temperature, base_temperature=None)(features, labels)

    flat = torch.cat(features.unbind(1))
    pml = PMLSupConLoss(temperature=temperature)(flat, labels.repeat(views))
    torch.testing.assert_close(ours, pml, rtol=1e-10, atol=1e-10)

    reference = supcontrast_reference(features, labels, temperature, base_temperature=0.07)
    scaled = SupConLoss(temperature=temperature, base_temperature=0.07)(features, labels)
    torch.testing.assert_close(scaled, reference, rtol=1e-10, atol=1e-10)


def test_flat_rows_equal_view_form() -> None:
    features = torch.randn(6, 2, 8, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss_fn = SupConLoss()
    flat = torch.cat(features.unbind(1))
    torch.testing.assert_close(loss_fn(features, labels), loss_fn(flat, labels.repeat(2)))


def test_gradients_match_pytorch_metric_learning() -> None:
    features = torch.randn(8, 2, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])
    (ours,) = torch.autograd.grad(
        SupConLoss(0.1, base_temperature=None)(features, labels), features
    )
    pml_loss = PMLSupConLoss(temperature=0.1)(torch.cat(features.unbind(1)), labels.repeat(2))
    (theirs,) = torch.autograd.grad(pml_loss, features)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_finite_in_low_precision_at_small_temperature(dtype: torch.dtype) -> None:
    features = torch.randn(16, 2, 32).to(dtype).requires_grad_()
    labels = torch.arange(16) % 4
    loss = SupConLoss(temperature=0.01, base_temperature=None)(features, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(features.grad).all()
    reference = SupConLoss(temperature=0.01, base_temperature=None)(
        features.detach().double(), labels
    )
    torch.testing.assert_close(loss.double(), reference, rtol=2e-2, atol=2e-2)


def test_no_positive_gives_zero_with_a_graph() -> None:
    features = torch.randn(5, 8, requires_grad=True)
    loss = SupConLoss()(features, torch.arange(5))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(features.grad, torch.zeros_like(features))


def test_anchors_without_positive_are_left_out_of_the_mean() -> None:
    features = torch.randn(5, 8, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 2, 3])  # only rows 0 and 1 have a positive
    z = F.normalize(features, dim=1)
    logits = z @ z.T / 0.1
    logits.fill_diagonal_(float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    expected = -(log_prob[0, 1] + log_prob[1, 0]) / 2
    torch.testing.assert_close(SupConLoss(0.1, None)(features, labels), expected)


def test_single_class_follows_supcontrast() -> None:
    # With one class every other row is a positive and there are no negatives. SupContrast's
    # formula still gives a finite, non-zero loss (it pulls the views together); PML returns 0
    # because its pair reducer finds no negative pair. We follow SupContrast and document it.
    features = torch.randn(6, 2, 4, dtype=torch.float64)
    labels = torch.zeros(6, dtype=torch.long)
    ours = SupConLoss(0.1, None)(features, labels)
    torch.testing.assert_close(ours, supcontrast_reference(features, labels, 0.1, 0.1))
    assert ours > 0


@pytest.mark.parametrize(
    ("features", "labels", "error", "match"),
    [
        (torch.randn(4, 2, 8), torch.arange(3), ValueError, r"labels must have shape \[4\]"),
        (torch.randn(4, 8), torch.arange(5), ValueError, r"labels must have shape \[4\]"),
        (torch.randn(4, 2, 8), torch.zeros(4), TypeError, "integer tensor"),
        (torch.randn(8), torch.arange(8), ValueError, r"\[B, V, D\] or \[N, D\]"),
        (torch.arange(8).view(4, 2), torch.arange(4), TypeError, "floating-point"),
        (torch.tensor([[float("nan"), 1.0], [1.0, 1.0]]), torch.arange(2), ValueError, "NaN"),
    ],
)
def test_bad_input(features, labels, error, match) -> None:
    with pytest.raises(error, match=match):
        SupConLoss()(features, labels)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf")])
def test_bad_temperature(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        SupConLoss(temperature=temperature)
