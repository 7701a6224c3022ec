"""Old public names kept for one release: each one warns and behaves like its new name."""

import pytest
import torch

from explainaug._deprecation import UNSET, renamed_argument
from explainaug.losses import EDDALoss, ExConLoss, SupConLoss

NAN_FEATURES = torch.tensor([[[float("nan"), 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
LABELS = torch.tensor([0, 1])


def test_renamed_argument_rejects_both_names() -> None:
    with pytest.raises(TypeError, match="give labels= only"):
        renamed_argument(1, 2, old="y", new="labels", owner="f", new_default=None)
    assert renamed_argument(UNSET, 2, old="y", new="labels", owner="f", new_default=None) == 2


@pytest.mark.parametrize("loss_class", [SupConLoss, ExConLoss])
def test_losses_validate_is_check_values(loss_class: type) -> None:
    with pytest.warns(DeprecationWarning, match="validate= is deprecated, use check_values="):
        old = loss_class(0.5, validate=False)
    assert old.check_values is False
    assert loss_class(0.5, check_values=False).check_values is False
    with pytest.raises(ValueError, match="NaN"):
        SupConLoss(0.5)(NAN_FEATURES, LABELS)
    with pytest.raises(TypeError, match="give check_values= only"):
        loss_class(0.5, check_values=False, validate=False)


def test_edda_loss_epsilon_is_label_smoothing() -> None:
    logits = torch.tensor([[0.5, 0.2, 0.1]])
    labels = torch.tensor([0])
    with pytest.warns(DeprecationWarning, match="epsilon= is deprecated, use label_smoothing="):
        old = EDDALoss(salient_target="smooth", epsilon=0.4)
    new = EDDALoss(salient_target="smooth", label_smoothing=0.4)
    assert old.label_smoothing == new.label_smoothing == 0.4
    # the "smooth" target is PyTorch's label smoothing of the true class
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.4)
    torch.testing.assert_close(old.components(logits, logits, logits, labels)["salient"], expected)
