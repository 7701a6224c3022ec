"""otsu_threshold against scikit-image, a hand-worked histogram and a brute-force split search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.filters import threshold_otsu

from explainaug.explain import otsu_threshold
from explainaug.explain.otsu import bin_counts, otsu_split


def _bimodal(seed: int, n: int = 1000) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    low = 0.3 + 0.05 * torch.randn(n // 3, generator=generator)
    high = 0.75 + 0.08 * torch.randn(n - n // 3, generator=generator)
    return torch.cat([low, high]).double()


@pytest.mark.parametrize("seed", range(5))
def test_matches_scikit_image_within_one_bin(seed: int) -> None:
    values = _bimodal(seed)
    expected = threshold_otsu(values.numpy(), nbins=256)
    width = float(values.max() - values.min()) / 256
    ours = float(otsu_threshold(values, bins=256))
    # ours is the upper edge of the lower class's last bin; scikit-image returns its centre
    assert abs(ours - expected) <= width
    assert ours - expected == pytest.approx(width / 2, abs=1e-9)
    assert 0.4 < ours < 0.65


def test_hand_worked_histogram() -> None:
    # bins of width 1 on [0, 4): counts [2, 1, 0, 3]
    values = torch.tensor([0.5, 0.5, 1.5, 3.5, 3.5, 3.5])
    # split s=1: 2 * 4 * (0.5 - 3.0)^2 = 50; s=2 and s=3: 3 * 3 * (5/6 - 3.5)^2 = 64 (tie -> s=2)
    assert otsu_split(torch.tensor([[2.0, 1.0, 0.0, 3.0]])).tolist() == [2]
    assert float(otsu_threshold(values, bins=4, value_range=(0.0, 4.0))) == 2.0
    centres = np.array([0.5, 1.5, 2.5, 3.5])
    expected = threshold_otsu(hist=(np.array([2, 1, 0, 3]), centres))
    assert expected == 1.5  # the centre of the same bin


def test_split_matches_brute_force_search() -> None:
    generator = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 20, (16, 12), generator=generator).double()
    counts[:, 0] += 1
    counts[:, -1] += 1
    for row, split in zip(counts, otsu_split(counts).tolist(), strict=False):
        levels = np.arange(12)
        hist = row.numpy()
        scores = [
            hist[:s].sum()
            * hist[s:].sum()
            * (np.average(levels[:s], weights=hist[:s]) - np.average(levels[s:], weights=hist[s:]))
            ** 2
            for s in range(1, 12)
        ]
        assert split == 1 + int(np.argmax(scores))


def test_rows_equal_row_by_row_with_valid_masks() -> None:
    generator = torch.Generator().manual_seed(1)
    values = torch.rand(6, 50, generator=generator) ** 2
    valid = torch.rand(6, 50, generator=generator) > 0.4
    for ranged in (None, (0.0, 1.0)):
        batched = otsu_threshold(values, bins=32, value_range=ranged, valid=valid)
        single = torch.stack(
            [
                otsu_threshold(row[keep], bins=32, value_range=ranged)
                for row, keep in zip(values, valid, strict=False)
            ]
        )
        torch.testing.assert_close(batched, single, rtol=0, atol=0)


def test_degenerate_rows() -> None:
    values = torch.tensor([[0.3, 0.3, 0.3], [0.1, 0.9, 0.5]])
    valid = torch.tensor([[True, True, True], [False, False, False]])
    thresholds = otsu_threshold(values, valid=valid)
    assert thresholds[0] == pytest.approx(0.3)  # constant row: scikit-image returns the value
    assert not bool((values[0] > thresholds[0]).any())
    assert torch.isfinite(thresholds).all()


def test_bin_counts_respects_valid() -> None:
    index = torch.tensor([[0, 1, 1, 3]])
    valid = torch.tensor([[True, False, True, True]])
    assert bin_counts(index, 4, valid).tolist() == [[1.0, 1.0, 0.0, 1.0]]


def test_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        otsu_threshold(torch.arange(4))
    with pytest.raises(ValueError, match="NaN"):
        otsu_threshold(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="bins"):
        otsu_threshold(torch.rand(4), bins=1)
    with pytest.raises(ValueError, match="value_range"):
        otsu_threshold(torch.rand(4), value_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="shape"):
        otsu_threshold(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="valid"):
        otsu_threshold(torch.rand(2, 4), valid=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        otsu_threshold(torch.rand(4), valid=torch.ones(4))
