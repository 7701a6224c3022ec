"""SaliencyCache and SaliencyDataset, including a round trip through DataLoader workers."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from explainaug.augment import SaliencyCache, SaliencyDataset, SaliencyMask, SaliencyOcclusion
from explainaug.explain import minmax_normalize


def test_update_resizes_by_area_normalises_and_stores_float16():
    torch.manual_seed(0)
    cache = SaliencyCache(10, size=(4, 4))
    maps = torch.rand(3, 1, 16, 16) * 1e6  # beyond float16's range before normalisation
    cache.update(torch.tensor([7, 2, 5]), maps)
    expected = minmax_normalize(F.adaptive_avg_pool2d(maps, 4))
    assert cache.maps.dtype == torch.float16
    torch.testing.assert_close(cache[torch.tensor([7, 2, 5])], expected, atol=1e-3, rtol=0)
    assert cache.filled.nonzero().flatten().tolist() == [2, 5, 7]
    never_updated = cache.get(0)
    assert never_updated.dtype == torch.float32 and never_updated.shape == (1, 4, 4)
    assert not torch.equal(never_updated, cache.get(0))  # a fresh random map, not zeros
    assert cache[2].shape == (1, 4, 4)


def test_masks_from_cached_maps_equal_masks_from_the_full_maps_when_sizes_agree():
    maps = torch.rand(2, 1, 8, 8) * 5 + 3
    cache = SaliencyCache(2, size=(8, 8))
    cache.update(torch.arange(2), maps)
    mask = SaliencyMask(ratio=0.3)
    torch.testing.assert_close(mask.mask(cache[[0, 1]], (8, 8)), mask.mask(maps, (8, 8)))


@pytest.mark.parametrize(
    ("indices", "maps", "error", "match"),
    [
        (torch.tensor([0, 1]), torch.rand(3, 1, 8, 8), ValueError, "2 indices"),
        (torch.tensor([0.0]), torch.rand(1, 1, 8, 8), TypeError, "LongTensor"),
        (torch.tensor([5]), torch.rand(1, 1, 8, 8), ValueError, r"\[0, 3\]"),
        (torch.tensor([0]), torch.full((1, 1, 8, 8), float("nan")), ValueError, "NaN"),
    ],
)
def test_update_errors(indices, maps, error, match):
    with pytest.raises(error, match=match):
        SaliencyCache(4).update(indices, maps)


def test_constructor_errors():
    with pytest.raises(ValueError, match="num_items"):
        SaliencyCache(0)
    with pytest.raises(ValueError, match="size"):
        SaliencyCache(4, size=(8,))
    with pytest.raises(ValueError, match="items"):
        SaliencyDataset(TensorDataset(torch.zeros(3, 3, 4, 4), torch.zeros(3)), SaliencyCache(4))


class MaskedImages(torch.utils.data.Dataset):
    """Worker-side use: mask each single image with its cached map."""

    def __init__(self, data: SaliencyDataset) -> None:
        self.data = data
        self.mask = SaliencyMask(ratio=0.5, fill="zero", keepdim=True)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image, saliency, label, index = self.data[index]
        return self.mask(image, saliency), saliency, label, index


def test_round_trip_through_dataloader_workers():
    images = torch.rand(12, 3, 8, 8) * 0.5 + 0.5
    labels = torch.arange(12)
    cache = SaliencyCache(12, size=(4, 4)).share_memory_()
    data = SaliencyDataset(TensorDataset(images, labels), cache, return_index=True)
    loader = DataLoader(MaskedImages(data), batch_size=4, num_workers=2, persistent_workers=True)

    for masked, saliency, label, index in loader:  # epoch 1: nothing cached yet: random maps
        assert saliency.shape == (4, 1, 4, 4) and saliency.ge(0).all() and saliency.le(1).all()
        assert masked.eq(0).flatten(1).sum(1).eq(3 * 32).all()
        assert torch.equal(label, index)
        cache.update(index, torch.rand(4, 1, 8, 8) + index.view(-1, 1, 1, 1).float())

    seen = torch.zeros(12, dtype=torch.bool)
    for masked, saliency, _label, index in loader:  # epoch 2: workers see the updates
        assert torch.equal(saliency, cache[index])
        expected = SaliencyMask(ratio=0.5, fill="zero")(images[index], cache[index])
        assert torch.equal(masked, expected)
        assert masked.eq(0).flatten(1).sum(1).eq(3 * 32).all()
        seen[index] = True
    assert seen.all()


def never_updated_items(transform, n=64):
    """The transform applied, in a Dataset, to items whose cache entries were never updated."""
    images = torch.rand(n, 3, 16, 16) * 0.5 + 0.5  # no pixel is 0 before the fill
    data = SaliencyDataset(TensorDataset(images, torch.zeros(n)), SaliencyCache(n, size=(8, 8)))
    return torch.stack([transform(image, saliency) for image, saliency, _ in data])


def test_never_updated_entries_occlude_random_places_not_the_top_rows():
    torch.manual_seed(0)
    occlude = SaliencyOcclusion("nonsalient", ratio=0.25, fill="zero", keepdim=True)
    occluded = never_updated_items(occlude).eq(0).all(1)  # [n, H, W]: pixels filled
    assert occluded.flatten(1).sum(1).eq(64).all()  # 25 % of 16 x 16, exactly
    frequency = occluded.float().mean(0)
    assert frequency[:4].mean() < 0.5  # an all-zero map occluded rows 0-3 of every image
    assert frequency.gt(0).float().mean() > 0.9  # nearly every pixel is occluded somewhere


def test_never_updated_entries_do_not_blank_whole_images():
    torch.manual_seed(0)
    kept = never_updated_items(SaliencyMask(threshold=0.5, fill="zero", keepdim=True)).ne(0)
    fraction = kept.all(1).flatten(1).float().mean(1)
    assert fraction.gt(0.05).all() and fraction.lt(0.95).all()  # an all-zero map kept nothing
