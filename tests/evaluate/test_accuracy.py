"""Top-k and per-class accuracy, checked by hand."""

import pytest
import torch
from torch import nn

from explainaug.evaluate.accuracy import accuracy, topk_correct
from explainaug.models import SmallCNN


class FixedLogits(nn.Module):
    """Images [B, K, 1, 1] carry the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x.flatten(1) + self.dummy


LOGITS = torch.tensor(
    [
        [0.9, 0.5, 0.1, 0.0, 0.2, 0.3],  # label 0: top-1 hit
        [0.9, 0.5, 0.1, 0.0, 0.2, 0.3],  # label 1: rank 2
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.9],  # label 0: rank 6
        [0.0, 0.1, 0.9, 0.2, 0.3, 0.4],  # label 2: top-1 hit
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.9],  # label 1: rank 5
    ]
)
LABELS = torch.tensor([0, 1, 0, 2, 1])


def loader(batch_size=2):
    images = LOGITS[:, :, None, None]
    return [
        (images[i : i + batch_size], LABELS[i : i + batch_size])
        for i in range(0, len(LABELS), batch_size)
    ]


def test_topk_and_per_class_by_hand():
    result = accuracy(FixedLogits(), loader(), topk=(1, 2, 5))
    assert result["top1"] == pytest.approx(2 / 5)
    assert result["top2"] == pytest.approx(3 / 5)
    assert result["top5"] == pytest.approx(4 / 5)
    assert result["count"] == 5
    # class 0: 1 of 2, class 1: 0 of 2, class 2: 1 of 1, classes 3-5 have no samples
    assert result["per_class"] == [0.5, 0.0, 1.0, None, None, None]
    assert result["class_counts"] == [2, 2, 1, 0, 0, 0]


def test_k_larger_than_classes_is_skipped():
    images = LOGITS[:, :3, None, None]
    result = accuracy(FixedLogits(), [(images, LABELS)], per_class=False)
    assert "top1" in result and "top5" not in result and "per_class" not in result
    # first three logits: argmax 0, 0, 2, 2, 2 against labels 0, 1, 0, 2, 1
    assert result["top1"] == pytest.approx(2 / 5)


def test_topk_correct_matches_membership():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(50, 8, generator=g), torch.randint(0, 8, (50,), generator=g)
    hits = topk_correct(logits, labels, (1, 3, 8, 9))
    assert set(hits) == {1, 3, 8}
    for k, hit in hits.items():
        members = torch.tensor(
            [int(labels[i]) in logits[i].topk(k).indices.tolist() for i in range(50)]
        )
        assert torch.equal(hit, members)
    assert bool(hits[8].all())


def test_model_mode_restored_and_device_batches():
    model = SmallCNN(num_classes=3, width=4).train()
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    result = accuracy(model, [(x, y, torch.ones(6, 1, 16, 16))], topk=(1,))
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean()
    assert result["top1"] == pytest.approx(float(expected))


def test_bad_input():
    model = FixedLogits()
    with pytest.raises(ValueError, match="no batches"):
        accuracy(model, [])
    with pytest.raises(ValueError, match="shape"):
        accuracy(model, [(LOGITS[:, :, None, None], LABELS[:3])])
    with pytest.raises(ValueError, match="lie in"):
        accuracy(model, [(LOGITS[:, :, None, None], LABELS + 5)])
    with pytest.raises(ValueError, match="topk"):
        accuracy(model, loader(), topk=(0,))
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        accuracy(model, [LOGITS[:, :, None, None]])
    with pytest.raises(TypeError, match="integer"):
        accuracy(model, [(LOGITS[:, :, None, None], LABELS.float())])
