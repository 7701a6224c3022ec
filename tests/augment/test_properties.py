"""Property tests: exact areas for any ratio and size, outputs stay in [0, 1]."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explainaug.augment import RandomOcclusion, SaliencyMask, SaliencyOcclusion

sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))
ratios = st.floats(0.0, 1.0, allow_nan=False)
levels = st.integers(1, 5)  # few distinct saliency values: many ties


def random_maps(seed: int, batch: int, size: tuple[int, int], n_levels: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_levels, (batch, 1, *size), generator=generator).float()


@settings(max_examples=60, deadline=None)
@given(
    size=sizes, ratio=ratios, batch=st.integers(1, 4), n_levels=levels, seed=st.integers(0, 2**16)
)
def test_ratio_modes_select_exactly_round_ratio_pixels(size, ratio, batch, n_levels, seed):
    maps = random_maps(seed, batch, size, n_levels)
    expected = float(round(ratio * size[0] * size[1]))
    kept = SaliencyMask(ratio=ratio).mask(maps, size).sum((1, 2, 3))
    assert kept.eq(expected).all()
    for region in ("salient", "nonsalient"):
        keep = SaliencyOcclusion(region, ratio=ratio).mask(maps, size)
        assert (1 - keep).sum((1, 2, 3)).eq(expected).all()
    for shape in ("pixels", "square"):
        keep = RandomOcclusion(ratio=ratio, shape=shape).mask(batch, size)
        assert (1 - keep).sum((1, 2, 3)).eq(expected).all()


@settings(max_examples=60, deadline=None)
@given(
    size=sizes,
    ratio=ratios,
    seed=st.integers(0, 2**16),
    fill=st.sampled_from(["mean", "zero", "blur", "noise", 0.0, 1.0, 0.37]),
    soft=st.booleans(),
    threshold=st.floats(0.0, 1.0),
)
def test_outputs_stay_in_unit_range(size, ratio, seed, fill, soft, threshold):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, *size, generator=generator)
    x[0] = x[0].round()  # exact 0s and 1s
    maps = torch.randn(2, 1, 5, 5, generator=generator) * 100
    outputs = [
        SaliencyMask(threshold=threshold, fill=fill, soft=soft)(x, maps),
        SaliencyMask(ratio=ratio, fill=fill, soft=soft)(x, maps),
        SaliencyOcclusion("nonsalient", ratio=ratio, fill=fill, soft=soft)(x, maps),
        RandomOcclusion(ratio=ratio, fill=fill)(x),
    ]
    for out in outputs:
        assert out.shape == x.shape
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
