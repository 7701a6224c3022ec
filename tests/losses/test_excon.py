import math

import pytest
import torch

from explainaug.losses import ExConLoss, SupConLoss


def hand_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # rows: two of class 0, one of class 1, one background (a masked class-0 image)
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 0])
    background = torch.tensor([False, False, False, True])
    return features, labels, background


def test_hand_worked_background_only_in_denominators() -> None:
    features, labels, background = hand_case()
    loss = ExConLoss(temperature=1.0, base_temperature=None)(features, labels, background)
    # anchors 0 and 1: positive is each other (dot 1); denominator: the other class-0 row (e^1),
    # the class-1 row (e^0) and the background row (e^-1). Row 2 has no positive; row 3 is
    # background, never an anchor, and not a positive of rows 0 and 1 despite its label 0.
    expected = math.log(math.e + 1 + math.exp(-1)) - 1
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    without_background = SupConLoss(temperature=1.0, base_temperature=None)(
        features[:3], labels[:3]
    )
    assert without_background.item() == pytest.approx(math.log(math.e + 1) - 1, rel=1e-12)


def test_no_background_equals_supcon() -> None:
    features = torch.randn(6, 2, 8, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    none = torch.zeros(6, 2, dtype=torch.bool)
    torch.testing.assert_close(
        ExConLoss(0.1)(features, labels, none), SupConLoss(0.1)(features, labels)
    )


def test_background_anchor_forms_its_own_class() -> None:
    features = torch.randn(6, 2, 8, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    background = torch.zeros(6, 2, dtype=torch.bool)
    background[1, 0] = background[4, 1] = background[5, 1] = True
    ours = ExConLoss(0.1, background_anchor=True)(features, labels, background)
    relabelled = torch.where(background, torch.tensor(99), labels[:, None].expand(6, 2))
    flat = torch.cat(features.unbind(1))
    expected = SupConLoss(0.1)(flat, relabelled.T.reshape(-1))
    torch.testing.assert_close(ours, expected)


def test_a_background_row_closer_to_the_anchors_raises_the_loss() -> None:
    # A negative hurts more the more it resembles the anchors; a positive would help instead.
    features, labels, background = hand_case()
    far, near = features.clone(), features.clone()
    far[3] = torch.tensor([0.6, 0.8])
    near[3] = torch.tensor([0.8, 0.6])
    loss_fn = ExConLoss(temperature=1.0)
    assert loss_fn(near, labels, background) > loss_fn(far, labels, background)


def test_view_form_flags_follow_the_rows() -> None:
    features = torch.randn(3, 2, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0])
    background = torch.tensor([[False, True], [False, False], [True, False]])
    flat = torch.cat(features.unbind(1))
    flat_flags = torch.cat(background.unbind(1))
    torch.testing.assert_close(
        ExConLoss(0.2)(features, labels, background),
        ExConLoss(0.2)(flat, labels.repeat(2), flat_flags),
    )


@pytest.mark.parametrize(
    ("background", "error", "match"),
    [
        (torch.zeros(3, 2), TypeError, "bool"),
        (torch.zeros(3, 3, dtype=torch.bool), ValueError, r"shape \(3, 2\)"),
    ],
)
def test_bad_background(background, error, match) -> None:
    with pytest.raises(error, match=match):
        ExConLoss()(torch.randn(3, 2, 4), torch.tensor([0, 1, 0]), background)
