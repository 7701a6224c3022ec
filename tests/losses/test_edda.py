import math

import pytest
import torch

from explainaug.losses import EDDALoss


def cross_entropy_by_hand(logits: list[float], target: list[float]) -> float:
    log_norm = math.log(sum(math.exp(v) for v in logits))
    return -sum(t * (v - log_norm) for t, v in zip(target, logits, strict=False))


CLEAN = [2.0, 0.0, -1.0]
NONSALIENT = [1.0, 0.5, 0.0]
SALIENT = [0.5, 0.2, 0.1]


def losses(target: str, **kwargs) -> tuple[float, float, float]:
    terms = EDDALoss(salient_target=target, **kwargs).components(
        torch.tensor([CLEAN], dtype=torch.float64),
        torch.tensor([NONSALIENT], dtype=torch.float64),
        torch.tensor([SALIENT], dtype=torch.float64),
        torch.tensor([0]),
    )
    return terms["clean"].item(), terms["nonsalient"].item(), terms["salient"].item()


def test_clean_and_nonsalient_terms_are_cross_entropy() -> None:
    clean, nonsalient, _ = losses("uniform")
    assert clean == pytest.approx(cross_entropy_by_hand(CLEAN, [1, 0, 0]))
    assert nonsalient == pytest.approx(cross_entropy_by_hand(NONSALIENT, [1, 0, 0]))


def test_uniform_target() -> None:
    assert losses("uniform")[2] == pytest.approx(cross_entropy_by_hand(SALIENT, [1 / 3] * 3))


def test_label_target_is_plain_occlusion_augmentation() -> None:
    assert losses("label")[2] == pytest.approx(cross_entropy_by_hand(SALIENT, [1, 0, 0]))


def test_smooth_target() -> None:
    target = [0.6 + 0.4 / 3, 0.4 / 3, 0.4 / 3]
    assert losses("smooth", label_smoothing=0.4)[2] == pytest.approx(
        cross_entropy_by_hand(SALIENT, target)
    )


def test_background_target_is_the_last_class() -> None:
    assert losses("background")[2] == pytest.approx(cross_entropy_by_hand(SALIENT, [0, 0, 1]))


def test_hinge_target() -> None:
    def softmax0(values: list[float]) -> float:
        return math.exp(values[0]) / sum(math.exp(v) for v in values)

    expected = max(0.0, softmax0(SALIENT) - softmax0(CLEAN) + 0.3)
    assert losses("hinge", margin=0.3)[2] == pytest.approx(expected)
    assert losses("hinge", margin=0.0)[2] == 0.0  # occluded confidence already below the clean one


def test_hinge_does_not_push_the_clean_logits() -> None:
    clean = torch.tensor([CLEAN], requires_grad=True)
    salient = torch.tensor([SALIENT], requires_grad=True)
    term = EDDALoss(salient_target="hinge", margin=0.5).components(
        clean, clean.detach(), salient, torch.tensor([0])
    )["salient"]
    term.backward()
    assert clean.grad is None or torch.equal(clean.grad, torch.zeros_like(clean))
    assert salient.grad[0, 0] > 0  # ascent raises the occluded confidence; descent lowers it


def test_forward_weights_the_terms() -> None:
    logits = [torch.randn(4, 5) for _ in range(3)]
    labels = torch.tensor([0, 1, 2, 3])
    loss_fn = EDDALoss(nonsalient_weight=0.3, salient_weight=2.0)
    terms = loss_fn.components(*logits, labels)
    expected = terms["clean"] + 0.3 * terms["nonsalient"] + 2.0 * terms["salient"]
    torch.testing.assert_close(loss_fn(*logits, labels), expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"salient_target": "zero"}, "salient_target must be one of"),
        ({"salient_weight": -1.0}, "salient_weight must be a finite number >= 0"),
        ({"label_smoothing": 0.0}, "label_smoothing must lie in"),
        ({"margin": 1.5}, "margin must lie in"),
    ],
)
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        EDDALoss(**kwargs)


def test_bad_shapes_and_labels() -> None:
    loss_fn = EDDALoss()
    with pytest.raises(ValueError, match="must have the shape of clean_logits"):
        loss_fn(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="LongTensor"):
        loss_fn(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must have shape \[2\]"):
        loss_fn(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0]))


def test_background_target_refuses_a_label_in_the_background_column() -> None:
    """K-column logits given to the background target: the last real class would silently be
    the background. With check_values (the default) a label there is refused."""
    logits = torch.zeros(2, 4)
    labels = torch.tensor([0, 3])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\].*background class"):
        EDDALoss(salient_target="background")(logits, logits, logits, labels)
    EDDALoss(salient_target="background")(logits, logits, logits, torch.tensor([0, 2]))
    EDDALoss(salient_target="background", check_values=False)(logits, logits, logits, labels)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        EDDALoss()(logits, logits, logits, torch.tensor([0, 4]))
