"""Map similarities against scipy and scikit-image, the independent oracles."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from skimage.feature import hog as skimage_hog
from skimage.metrics import structural_similarity

from explainaug.evaluate.similarity import (
    compare_maps,
    hog,
    hog_similarity,
    normalize_abs,
    normalize_signed,
    rank,
    rank_correlation,
    spearman_abs,
    spearman_signed,
    ssim,
    ssim_similarity,
)


def _adebayo_abs(image_3d: np.ndarray, percentile: float = 99) -> np.ndarray:
    """The notebook's VisualizeImageGrayscale, channels last."""
    image_2d = np.sum(np.abs(image_3d), axis=2)
    vmax, vmin = np.percentile(image_2d, percentile), np.min(image_2d)
    return np.clip((image_2d - vmin) / (vmax - vmin), 0, 1)


def _adebayo_signed(image_3d: np.ndarray, percentile: float = 99) -> np.ndarray:
    image_2d = np.sum(image_3d, axis=2)
    return np.clip(image_2d / abs(np.percentile(image_2d, percentile)), -1, 1)


def test_rank_matches_scipy_rankdata_with_ties() -> None:
    values = torch.randint(0, 6, (4, 50)).double()
    expected = np.stack([scipy.stats.rankdata(row) for row in values.numpy()])
    np.testing.assert_array_equal(rank(values).numpy(), expected)


def test_rank_correlation_matches_spearmanr_with_ties() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (5, 1, 9, 7), generator=generator).float()
    b = (a + torch.randint(0, 3, a.shape, generator=generator)).float()
    ours = rank_correlation(a, b)
    expected = [scipy.stats.spearmanr(a[i].flatten(), b[i].flatten())[0] for i in range(5)]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6)


def test_spearman_variants_match_notebook_pipeline() -> None:
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, 16, 16, generator=generator)
    b = a + 0.8 * torch.randn(3, 3, 16, 16, generator=generator)
    for ours, normalize in ((spearman_abs, _adebayo_abs), (spearman_signed, _adebayo_signed)):
        expected = [
            scipy.stats.spearmanr(
                normalize(a[i].permute(1, 2, 0).numpy()).ravel(),
                normalize(b[i].permute(1, 2, 0).numpy()).ravel(),
            )[0]
            for i in range(3)
        ]
        np.testing.assert_allclose(ours(a, b).numpy(), expected, atol=1e-5)


def test_normalisations_match_notebook() -> None:
    a = torch.randn(2, 3, 10, 10)
    for ours, reference in ((normalize_abs, _adebayo_abs), (normalize_signed, _adebayo_signed)):
        expected = np.stack([reference(a[i].permute(1, 2, 0).double().numpy()) for i in range(2)])
        np.testing.assert_allclose(ours(a)[:, 0].numpy(), expected, atol=1e-5)


def test_constant_map_gives_nan_like_scipy() -> None:
    a = torch.zeros(1, 1, 4, 4)
    assert torch.isnan(rank_correlation(a, torch.rand(1, 1, 4, 4))).all()


@pytest.mark.parametrize("win_size", [None, 5, 7])
def test_ssim_matches_skimage(win_size: int | None) -> None:
    generator = torch.Generator().manual_seed(2)
    a = torch.rand(3, 1, 20, 24, generator=generator, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(a.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    expected = [
        structural_similarity(
            a[i, 0].numpy(),
            b[i, 0].numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            win_size=win_size,
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(ssim(a, b, win_size=win_size).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(
        ssim(a.float(), b.float(), win_size=win_size).numpy(), expected, atol=1e-4
    )


def test_ssim_multichannel_matches_skimage_channel_mean() -> None:
    a = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    b = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    expected = structural_similarity(
        a[0].numpy(),
        b[0].numpy(),
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert float(ssim(a, b)) == pytest.approx(expected, abs=1e-6)


def test_ssim_similarity_minmax_scales_maps() -> None:
    a = torch.rand(2, 1, 16, 16)
    assert torch.allclose(ssim_similarity(a, 5 * a + 2), torch.ones(2))
    assert (ssim_similarity(a, torch.rand(2, 1, 16, 16)) < 0.5).all()


def test_hog_matches_skimage_defaults() -> None:
    images = torch.rand(2, 1, 32, 40, dtype=torch.float64)
    expected = np.stack([skimage_hog(image[0].numpy()) for image in images])
    np.testing.assert_allclose(hog(images).numpy(), expected, atol=1e-6)
    cells = hog(images, orientations=6, pixels_per_cell=(4, 4), cells_per_block=(2, 2))
    expected = np.stack(
        [
            skimage_hog(
                image[0].numpy(), orientations=6, pixels_per_cell=(4, 4), cells_per_block=(2, 2)
            )
            for image in images
        ]
    )
    np.testing.assert_allclose(cells.numpy(), expected, atol=1e-6)


def test_hog_similarity_identical_high_different_low() -> None:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / 30)[None, None]
    stripes = torch.sin(xx / 2)[None, None] + 1
    for correlation in ("spearman", "pearson"):
        same = hog_similarity(blob, blob.clone(), correlation=correlation)
        different = hog_similarity(blob, stripes, correlation=correlation)
        assert float(same) == pytest.approx(1.0, abs=1e-6)
        assert float(different) < 0.5


def test_random_maps_score_near_zero() -> None:
    generator = torch.Generator().manual_seed(3)
    a = torch.rand(64, 1, 32, 32, generator=generator)
    b = torch.rand(64, 1, 32, 32, generator=generator)
    scores = compare_maps(a, b, ("spearman_abs", "spearman"))
    for value in scores.values():
        assert abs(float(value.mean())) < 0.02


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 5))
    with pytest.raises(ValueError, match="shape"):
        spearman_abs(torch.rand(2, 16), torch.rand(2, 16))
    with pytest.raises(TypeError, match="floating"):
        ssim(torch.ones(1, 1, 16, 16, dtype=torch.long), torch.ones(1, 1, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="win_size"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="too small"):
        hog(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="similarity must name"):
        compare_maps(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), ("pearson",))
    with pytest.raises(ValueError, match="batch size 0"):
        rank_correlation(torch.rand(0, 1, 4, 4), torch.rand(0, 1, 4, 4))


def test_hog_similarity_shrinks_cells_for_small_maps() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = (
        torch.rand(3, 1, 16, 16, generator=generator),
        torch.rand(3, 1, 16, 16, generator=generator),
    )
    # 16 px hold no 3x3 block of 8x8 cells: the default takes 5x5 cells (16 // 3)
    torch.testing.assert_close(hog_similarity(a, b), hog_similarity(a, b, pixels_per_cell=(5, 5)))
    torch.testing.assert_close(hog_similarity(a, a), torch.ones(3))
    big = torch.rand(2, 1, 32, 32, generator=generator)
    torch.testing.assert_close(
        hog_similarity(big, big.flip(3)), hog_similarity(big, big.flip(3), pixels_per_cell=(8, 8))
    )
