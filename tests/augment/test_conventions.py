"""Kornia conventions shared by every masking augmentation: p, same_on_batch, keepdim, replay."""

import pytest
import torch

from explainaug.augment import Fill, RandomOcclusion, SaliencyMask, SaliencyOcclusion, supcon_views


def make(kind: str, **kwargs):
    if kind == "mask":
        return SaliencyMask(fill="zero", **kwargs)
    if kind == "occlusion":
        return SaliencyOcclusion(ratio=0.5, fill="zero", **kwargs)
    return RandomOcclusion(ratio=0.5, fill="zero", **kwargs)


def call(aug, x, saliency, **kwargs):
    return aug(x, saliency, **kwargs)  # one call shape for all three


KINDS = ["mask", "occlusion", "random"]


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.rand(16, 3, 8, 8) * 0.5 + 0.5, torch.rand(16, 1, 4, 4)  # no zero pixels


@pytest.mark.parametrize("kind", KINDS)
def test_p0_returns_the_input_and_p1_changes_every_image(kind, batch):
    x, saliency = batch
    assert torch.equal(call(make(kind, p=0.0), x, saliency), x)
    out = call(make(kind, p=1.0), x, saliency)
    assert (out != x).flatten(1).any(1).all()


@pytest.mark.parametrize("kind", KINDS)
def test_p_half_with_a_seeded_generator(kind, batch):
    x, saliency = batch
    aug = make(kind, p=0.5)
    out = call(aug, x, saliency, generator=torch.Generator().manual_seed(3))
    chosen = aug._params["batch_prob"]
    expected = torch.rand(16, generator=torch.Generator().manual_seed(3)) < 0.5
    assert torch.equal(chosen, expected) and 0 < chosen.sum() < 16
    assert torch.equal(out[~chosen], x[~chosen])
    assert (out[chosen] != x[chosen]).flatten(1).any(1).all()
    again = call(make(kind, p=0.5), x, saliency, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, out)


@pytest.mark.parametrize("kind", KINDS)
def test_same_on_batch_selects_all_or_none(kind, batch):
    x, saliency = batch
    aug = make(kind, p=0.5, same_on_batch=True)
    for seed in range(6):
        call(aug, x, saliency, generator=torch.Generator().manual_seed(seed))
        chosen = aug._params["batch_prob"]
        assert chosen.all() or not chosen.any()


@pytest.mark.parametrize("kind", KINDS)
def test_replay_with_params_repeats_masks_and_selection(kind, batch):
    x, saliency = batch
    aug = make(kind, p=0.5)
    first = call(aug, x, saliency)
    params = aug._params
    replayed = aug(x, params=params)
    assert torch.equal(replayed, first)
    other = torch.rand_like(x)
    replayed_other = aug(other, params=params)
    keep = params["keep"].bool() | ~params["batch_prob"].view(-1, 1, 1, 1)
    assert torch.equal(replayed_other[keep.expand_as(x)], other[keep.expand_as(x)])


@pytest.mark.parametrize("kind", KINDS)
def test_replay_with_wrong_params_raises(kind, batch):
    x, saliency = batch
    aug = make(kind)
    call(aug, x, saliency)
    with pytest.raises(ValueError, match="params"):
        aug(x[:4], params=aug._params)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("map_shape", [(4, 4), (1, 4, 4), (1, 1, 4, 4)])
def test_single_image_with_keepdim(kind, map_shape):
    torch.manual_seed(1)
    image, saliency = torch.rand(3, 8, 8), torch.rand(map_shape)
    generator = torch.Generator().manual_seed(0)
    kept = call(make(kind, keepdim=True), image, saliency, generator=generator)
    generator = torch.Generator().manual_seed(0)
    batched = call(make(kind), image, saliency, generator=generator)
    assert kept.shape == (3, 8, 8) and batched.shape == (1, 3, 8, 8)
    assert torch.equal(kept, batched[0])
    if kind != "random":
        reference = call(make(kind), image[None], saliency.reshape(1, 1, 4, 4))
        assert torch.equal(batched, reference)


def test_keepdim_keeps_batched_inputs_batched(batch):
    x, saliency = batch
    assert SaliencyMask(keepdim=True)(x, saliency).shape == x.shape


def test_noise_fill_is_replayed_exactly(batch):
    x, saliency = batch
    aug = SaliencyOcclusion(fill="noise", p=0.5)
    first = aug(x, saliency)
    assert torch.equal(aug(x, params=aug._params), first)
    assert not torch.equal(aug(x, saliency), first)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: SaliencyMask(fill="zero", **kw),
        lambda **kw: SaliencyOcclusion(fill="zero", **kw),
    ],
)
def test_check_values_off_skips_only_the_value_checks(make) -> None:
    x, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)
    out_of_range = x + 1.0
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        make()(out_of_range, maps)
    fast = make(check_values=False)
    torch.testing.assert_close(fast(x, maps), make()(x, maps))  # same result on good input
    fast(out_of_range, maps)  # no range check (and no host sync) when turned off
    with pytest.raises(ValueError, match="batch size"):
        fast(x, maps[:1])  # shape checks stay on


@pytest.mark.parametrize("kind", ["occlusion", "random"])
def test_per_call_ratio_occludes_that_many_pixels(kind, batch):
    x, saliency = batch
    ratio = torch.linspace(0.0, 1.0, 16)
    out = make(kind)(x, saliency, ratio=ratio)  # same call for both occlusions
    occluded = (out == 0).all(dim=1).sum(dim=(1, 2))
    assert occluded.tolist() == torch.round(ratio.double() * 64).long().tolist()
    assert ((make(kind)(x, saliency, ratio=0.25) == 0).all(dim=1).sum(dim=(1, 2)) == 16).all()


@pytest.mark.parametrize("cls", [SaliencyMask, SaliencyOcclusion])
def test_threshold_and_ratio_have_one_name_and_exclude_each_other(cls, batch):
    x, saliency = batch
    with pytest.raises(ValueError, match="give threshold= or ratio=, not both"):
        cls(threshold=0.5, ratio=0.2)
    by_threshold = cls(threshold=0.5)
    assert by_threshold.threshold == 0.5 and by_threshold.ratio is None
    by_ratio = cls(ratio=0.25)
    assert by_ratio.ratio == 0.25 and by_ratio.threshold is None
    # 0.25 of the pixels selected: kept by the mask, occluded by the occlusion
    selected = by_ratio.mask(saliency, (8, 8)).sum(dim=(1, 2, 3))
    assert (selected == (16 if cls is SaliencyMask else 48)).all()
    with pytest.raises(ValueError, match="selects by threshold"):
        by_threshold(x, saliency, ratio=0.2)


def test_arguments_after_the_first_are_keyword_only():
    with pytest.raises(TypeError):
        SaliencyMask(0.5, 0.2)
    with pytest.raises(TypeError):
        SaliencyOcclusion("salient", 0.2)
    with pytest.raises(TypeError):
        RandomOcclusion(0.2, "square")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fill", ["zero", "mean", "blur", "noise", 0.5])
def test_pixels_not_occluded_come_back_unchanged_on_normalised_images(kind, fill):
    torch.manual_seed(1)
    x = torch.randn(4, 3, 8, 8) * 2  # normalised images: values outside [0, 1]
    saliency = torch.rand(4, 1, 8, 8)
    aug = make(kind, check_values=False)
    aug.fill = Fill(fill)
    out = call(aug, x, saliency)
    kept = aug._params["keep"].eq(1).expand_as(x)
    assert kept.any() and (~kept).any()
    assert torch.equal(out[kept], x[kept])  # a clamp to [0, 1] destroyed the negative values


def test_nothing_occluded_means_nothing_changed():
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(RandomOcclusion(ratio=0.0, fill="zero", check_values=False)(x), x)


@pytest.mark.parametrize("kind", [*KINDS, "views"])
@pytest.mark.parametrize("shape", [(2, 32, 32, 3), (2, 16, 16, 1), (32, 32, 3)])
def test_channels_last_images_are_rejected(kind, shape):
    x = torch.rand(shape)
    saliency = torch.rand(*shape[:-3], 1, 8, 8) if len(shape) == 4 else torch.rand(8, 8)
    aug = supcon_views(8) if kind == "views" else make(kind)
    with pytest.raises(ValueError, match=r"looks channels-last \[B, H, W, C\]"):
        aug(x) if kind in ("views", "random") else aug(x, saliency)


def test_small_images_in_channels_first_layout_still_pass():
    x = torch.rand(2, 3, 4, 3)  # 3 channels, 4 x 3 pixels: second dimension not > 4
    assert make("random")(x).shape == x.shape
