"""Similarity of saliency maps, batched over images: Spearman, SSIM and HOG (Adebayo et al. 2018).

Every function takes two batches of maps of the same shape, ``[B, C, H, W]`` (attributions with
channels), ``[B, 1, H, W]`` or ``[B, H, W]``, and returns one score per image, ``[B]``, computed
on the maps' device. The preprocessing of ``SIMILARITIES`` follows the sanity-checks notebook
(``inceptionv3_cascading_randomization.ipynb``). Rank correlations are undefined (NaN, as in
scipy) when a map is constant; callers that average scores count those images separately.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from explainaug._shared import minmax_normalize
from explainaug._validation import check_tensor
from explainaug.data.filters import gaussian_blur

SimilarityFn = Callable[[Tensor, Tensor], Tensor]


def _as_batch(maps: Tensor, name: str) -> Tensor:
    """Return maps as ``[B, C, H, W]`` floats (``[B, H, W]`` gains a channel)."""
    maps = check_tensor(maps, name)
    if maps.ndim == 3:
        maps = maps.unsqueeze(1)
    if maps.ndim != 4:
        raise ValueError(
            f"{name} must have shape [B, C, H, W] or [B, H, W], got {tuple(maps.shape)}"
        )
    if not maps.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {maps.dtype}")
    return maps


def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    a, b = _as_batch(a, "a"), _as_batch(b, "b")
    if a.shape != b.shape:
        raise ValueError(
            f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device != b.device:
        raise ValueError(f"maps must be on one device, got {a.device} and {b.device}")
    if a.shape[0] == 0:
        raise ValueError("maps must hold at least one image, got batch size 0")
    return a, b


def rank(values: Tensor) -> Tensor:
    """Rank each row of ``values [B, N]`` from 1 to N, giving ties their average rank.

    Matches ``scipy.stats.rankdata(method="average")`` row by row.

    Example:
        >>> rank(torch.tensor([[3.0, 1.0, 3.0, 2.0]])).tolist()
        [[3.5, 1.0, 3.5, 2.0]]
    """
    ordered = values.sort(dim=1).values.contiguous()
    queries = values.contiguous()
    below = torch.searchsorted(ordered, queries, right=False)
    up_to = torch.searchsorted(ordered, queries, right=True)
    return (below + up_to + 1).to(values.dtype) / 2


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of the rows of ``a`` and ``b`` (``[B, N]``); NaN for a constant row.

    Example:
        >>> a, b = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 4.0, 7.0]])
        >>> pearson(a, b).round(decimals=4)
        tensor([0.9934])
    """
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denominator = (a.square().sum(dim=1) * b.square().sum(dim=1)).sqrt()
    correlation = (a * b).sum(dim=1) / denominator
    return torch.where(denominator > 0, correlation, torch.full_like(correlation, float("nan")))


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation of the flattened maps, one value per image.

    Average ranks for ties (scipy's default); NaN when either map is constant. Ranks are taken
    in float64 so that ties and large images stay exact.

    Example:
        >>> a = torch.tensor([[[1.0, 2.0], [3.0, 3.0]]])
        >>> rank_correlation(a, -a).tolist()
        [-1.0]
    """
    a, b = _check_pair(a, b)
    return _spearman_rows(a.flatten(1), b.flatten(1))


def _spearman_rows(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation of the rows of ``[B, N]`` tensors, ranked in float64."""
    return pearson(rank(a.double()), rank(b.double())).to(a.dtype)


def normalize_abs(maps: Tensor, percentile: float = 99.0) -> Tensor:
    """Adebayo's ABS normalisation: |map| summed over channels, ``(x-min)/(p99-min)`` in [0, 1].

    Returns ``[B, 1, H, W]``. A map whose percentile equals its minimum becomes all zeros.

    Example:
        >>> normalize_abs(torch.tensor([[[[-4.0, 0.0], [1.0, 2.0]]]]), 50.0).flatten()
        tensor([1.0000, 0.0000, 0.6667, 1.0000])
    """
    gray = _as_batch(maps, "maps").abs().sum(dim=1, keepdim=True)
    flat = gray.flatten(1)
    low = flat.amin(dim=1, keepdim=True)
    high = torch.quantile(flat, percentile / 100, dim=1, keepdim=True)
    scaled = (flat - low) / (high - low).clamp_min(torch.finfo(flat.dtype).tiny)
    return scaled.clamp(0, 1).view_as(gray)


def normalize_signed(maps: Tensor, percentile: float = 99.0) -> Tensor:
    """Adebayo's no-ABS normalisation: signed channel sum ÷ |p99|, clipped to [-1, 1].

    Returns ``[B, 1, H, W]``. A map whose percentile is 0 is only clipped (sign kept).

    Example:
        >>> normalize_signed(torch.tensor([[[[-4.0, 0.0], [1.0, 2.0]]]]), 50.0).flatten().tolist()
        [-1.0, 0.0, 1.0, 1.0]
    """
    gray = _as_batch(maps, "maps").sum(dim=1, keepdim=True)
    flat = gray.flatten(1)
    span = torch.quantile(flat, percentile / 100, dim=1, keepdim=True).abs()
    scaled = flat / torch.where(span > 0, span, torch.ones_like(span))
    return scaled.clamp(-1, 1).view_as(gray)


def spearman_abs(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation after ``normalize_abs`` (the paper's "Spearman ABS").

    Example:
        >>> a = torch.rand(2, 3, 8, 8)
        >>> spearman_abs(a, a).tolist()
        [1.0, 1.0]
    """
    a, b = _check_pair(a, b)
    return rank_correlation(normalize_abs(a), normalize_abs(b))


def spearman_signed(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation after ``normalize_signed`` (the paper's "Spearman no-ABS").

    Example:
        >>> a = torch.tensor([[[[-2.0, -1.0], [1.0, 3.0]]]])
        >>> spearman_signed(a, 2 * a).tolist()
        [1.0]
    """
    a, b = _check_pair(a, b)
    return rank_correlation(normalize_signed(a), normalize_signed(b))


def ssim(
    a: Tensor,
    b: Tensor,
    *,
    data_range: float = 1.0,
    sigma: float = 1.5,
    win_size: int | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Mean SSIM per image, as ``skimage.metrics.structural_similarity`` with Gaussian weights.

    Matches skimage called with ``gaussian_weights=True, sigma=sigma, use_sample_covariance=False,
    data_range=data_range`` (and ``channel_axis=0`` for several channels, averaged): a Gaussian
    filter truncated at 3.5 sigma with reflected borders, population covariances, and the mean of
    the SSIM image after cropping ``(win_size - 1) // 2`` pixels from each border. As in skimage,
    ``win_size`` only sets that crop; ``None`` gives the filter's width (11 for sigma 1.5). The
    sanity-checks notebook used ``win_size=5``.

    Example:
        >>> a = torch.rand(2, 16, 16)
        >>> ssim(a, a).tolist()
        [1.0, 1.0]
    """
    a, b = _check_pair(a, b)
    truncate = 3.5
    if win_size is None:
        win_size = 2 * int(truncate * sigma + 0.5) + 1
    if win_size % 2 != 1 or win_size < 1:
        raise ValueError(f"win_size must be an odd positive number, got {win_size}")
    if min(a.shape[-2:]) < win_size:
        raise ValueError(
            f"win_size {win_size} exceeds the map size {tuple(a.shape[-2:])}; pass a smaller odd "
            "win_size or larger maps"
        )
    if not (data_range > 0 and sigma > 0):
        raise ValueError(f"data_range and sigma must be > 0, got {data_range} and {sigma}")
    batch = a.shape[0]
    stacked = gaussian_blur(torch.cat([a, b, a * a, b * b, a * b]), sigma, truncate, "reflect")
    mean_a, mean_b, mean_aa, mean_bb, mean_ab = stacked.split(batch)
    var_a = mean_aa - mean_a * mean_a
    var_b = mean_bb - mean_b * mean_b
    cov = mean_ab - mean_a * mean_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    numerator = (2 * mean_a * mean_b + c1) * (2 * cov + c2)
    denominator = (mean_a.square() + mean_b.square() + c1) * (var_a + var_b + c2)
    pad = (win_size - 1) // 2
    height, width = a.shape[-2:]
    index = (numerator / denominator)[..., pad : height - pad, pad : width - pad]
    return index.flatten(2).mean(dim=2).mean(dim=1)


def ssim_similarity(a: Tensor, b: Tensor, **ssim_options: float) -> Tensor:
    """SSIM of the |channel-summed| maps after min-max scaling each to [0, 1].

    Keyword arguments go to ``ssim``.

    Example:
        >>> a = torch.rand(2, 1, 16, 16)
        >>> ssim_similarity(a, 3 * a).tolist()
        [1.0, 1.0]
    """
    a, b = _check_pair(a, b)
    gray_a = minmax_normalize(a.abs().sum(dim=1, keepdim=True))
    gray_b = minmax_normalize(b.abs().sum(dim=1, keepdim=True))
    return ssim(gray_a, gray_b, data_range=1.0, **ssim_options)


def hog(
    images: Tensor,
    *,
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block: tuple[int, int] = (3, 3),
    eps: float = 1e-5,
) -> Tensor:
    """Histogram-of-oriented-gradients descriptors of single-channel images, batched.

    Follows ``skimage.feature.hog`` with its defaults (``block_norm="L2-Hys"``,
    ``transform_sqrt=False``, ``feature_vector=True``): central differences with zero gradient on
    the border rows/columns, unsigned orientations in [0, 180) hard-assigned to ``orientations``
    bins, per-cell histograms of gradient magnitude divided by the cell area, and L2-Hys
    normalisation of every overlapping block, flattened in skimage's order. Differences from
    skimage: computed in the input's precision (skimage uses float64), so a pixel whose
    orientation lies within rounding of a bin edge may fall in the neighbouring bin.

    Takes ``[B, 1, H, W]`` or ``[B, H, W]``, returns ``[B, D]`` descriptors; trailing pixels that
    fill no cell are dropped.

    Example:
        >>> hog(torch.rand(2, 1, 32, 32)).shape
        torch.Size([2, 324])
    """
    images = _as_batch(images, "images")
    if images.shape[1] != 1:
        raise ValueError(f"hog takes single-channel images [B, 1, H, W], got {tuple(images.shape)}")
    cell_rows, cell_cols = pixels_per_cell
    block_rows, block_cols = cells_per_block
    n_cell_rows, n_cell_cols = images.shape[2] // cell_rows, images.shape[3] // cell_cols
    n_block_rows, n_block_cols = n_cell_rows - block_rows + 1, n_cell_cols - block_cols + 1
    if n_block_rows <= 0 or n_block_cols <= 0:
        raise ValueError(
            f"images of size {tuple(images.shape[-2:])} are too small for pixels_per_cell="
            f"{pixels_per_cell} and cells_per_block={cells_per_block}; they need at least "
            f"{block_rows * cell_rows} rows and {block_cols * cell_cols} columns"
        )
    plane = images[:, 0]
    grad_rows = torch.zeros_like(plane)
    grad_cols = torch.zeros_like(plane)
    grad_rows[:, 1:-1, :] = plane[:, 2:, :] - plane[:, :-2, :]
    grad_cols[:, :, 1:-1] = plane[:, :, 2:] - plane[:, :, :-2]
    magnitude = torch.hypot(grad_rows, grad_cols)
    angle = torch.rad2deg(torch.atan2(grad_rows, grad_cols)) % 180
    edges = torch.arange(1, orientations, device=images.device, dtype=angle.dtype)
    bins = torch.bucketize(angle, edges * (180 / orientations), right=True)
    votes = F.one_hot(bins, orientations).to(plane.dtype) * magnitude.unsqueeze(-1)
    votes = votes[:, : n_cell_rows * cell_rows, : n_cell_cols * cell_cols].permute(0, 3, 1, 2)
    cells = F.avg_pool2d(votes, (cell_rows, cell_cols))  # [B, orientations, rows, cols]
    blocks = cells.unfold(2, block_rows, 1).unfold(3, block_cols, 1)
    # [B, orient, n_block_rows, n_block_cols, block_rows, block_cols] -> skimage's order
    blocks = blocks.permute(0, 2, 3, 4, 5, 1).flatten(3)
    blocks = blocks / (blocks.square().sum(dim=3, keepdim=True) + eps**2).sqrt()
    blocks = blocks.clamp_max(0.2)
    blocks = blocks / (blocks.square().sum(dim=3, keepdim=True) + eps**2).sqrt()
    return blocks.flatten(1)


def hog_similarity(
    a: Tensor,
    b: Tensor,
    *,
    correlation: str = "spearman",
    pixels_per_cell: tuple[int, int] | None = None,
    cells_per_block: tuple[int, int] = (3, 3),
) -> Tensor:
    """Correlation of the HOG descriptors of the |channel-summed|, min-max scaled maps.

    The sanity-checks notebook takes Spearman of the HOGs (the paper text says Pearson): pick
    with ``correlation="spearman" | "pearson"``. The notebook used 16x16 cells on 224x224 maps;
    the default (None) is skimage's 8x8, suited to 32x32 and 64x64 maps, shrunk for maps too
    small to hold one block of such cells (16x16 maps get 5x5 cells).

    Example:
        >>> a = torch.rand(2, 1, 32, 32)
        >>> hog_similarity(a, a).tolist()
        [1.0, 1.0]
    """
    a, b = _check_pair(a, b)
    if correlation not in ("spearman", "pearson"):
        raise ValueError(f"correlation must be 'spearman' or 'pearson', got {correlation!r}")
    if pixels_per_cell is None:
        pixels_per_cell = tuple(  # type: ignore[assignment]
            max(1, min(8, size // blocks))
            for size, blocks in zip(a.shape[-2:], cells_per_block, strict=False)
        )
    features = hog(
        minmax_normalize(torch.cat([a, b]).abs().sum(dim=1, keepdim=True)),
        pixels_per_cell=pixels_per_cell,
        cells_per_block=cells_per_block,
    )
    hog_a, hog_b = features.split(a.shape[0])
    if correlation == "pearson":
        return pearson(hog_a.double(), hog_b.double()).to(a.dtype)
    return _spearman_rows(hog_a, hog_b)


SIMILARITIES: dict[str, SimilarityFn] = {
    "spearman_abs": spearman_abs,
    "spearman": spearman_signed,
    "ssim": ssim_similarity,
    "hog": hog_similarity,
}


def check_similarity_names(names: Sequence[str] | str) -> tuple[str, ...]:
    """Validate similarity names against ``SIMILARITIES``; a single name becomes a 1-tuple.

    Example:
        >>> check_similarity_names("ssim")
        ('ssim',)
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [name for name in names if name not in SIMILARITIES]
    if unknown or not names:
        raise ValueError(f"similarity must name some of {sorted(SIMILARITIES)}, got {list(names)}")
    return names


def compare_maps(
    a: Tensor, b: Tensor, names: Sequence[str] | str = tuple(SIMILARITIES)
) -> dict[str, Tensor]:
    """Every named similarity between two batches of maps: ``{name: [B] scores}``.

    Example:
        >>> a = torch.rand(2, 1, 32, 32)
        >>> sorted(compare_maps(a, a))
        ['hog', 'spearman', 'spearman_abs', 'ssim']
    """
    return {name: SIMILARITIES[name](a, b) for name in check_similarity_names(names)}
