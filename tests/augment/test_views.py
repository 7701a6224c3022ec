"""supcon_views and keeping saliency aligned through Kornia geometry."""

import kornia.augmentation as K
import pytest
import torch
from kornia.constants import DataKey, Resample

from explainaug.augment import SaliencyMask, Views, supcon_views


def test_supcon_views_shape_range_and_independent_views():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    views = supcon_views(24, n_views=3)(x)
    assert views.shape == (8, 3, 3, 24, 24)
    assert views.min() >= 0 and views.max() <= 1
    for i in range(3):
        for j in range(i + 1, 3):
            assert (views[:, i] - views[:, j]).abs().flatten(1).amax(1).gt(1e-3).all()


def test_supcon_views_pipeline_is_the_supcontrast_recipe():
    pipeline = supcon_views(32).augmentation
    crop, flip, jitter, gray = list(pipeline.children())
    assert isinstance(crop, K.RandomResizedCrop) and isinstance(flip, K.RandomHorizontalFlip)
    assert isinstance(jitter, K.ColorJitter) and isinstance(gray, K.RandomGrayscale)
    assert tuple(crop.flags["size"]) == (32, 32)
    assert jitter.p == 0.8 and gray.p == 0.2 and flip.p == 0.5


def test_views_reject_bad_arguments():
    with pytest.raises(ValueError, match="n_views"):
        Views(K.RandomHorizontalFlip(), n_views=0)
    with pytest.raises(ValueError, match="1 \\(gray\\) or 3 \\(RGB\\) channels"):
        supcon_views(8)(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="must be finite and in \\[0, 1\\]"):
        supcon_views(8)(torch.rand(2, 3, 8, 8) * 2 - 0.5)  # normalised, not pixels
    with pytest.raises(ValueError, match="must be finite and in \\[0, 1\\]"):
        supcon_views(8)(torch.full((2, 3, 8, 8), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        supcon_views(8)(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_supcon_views_of_gray_images_are_the_gray_rgb_views_with_one_channel():
    gray = torch.rand(6, 1, 16, 16)
    torch.manual_seed(3)
    views = supcon_views(12, n_views=3)(gray)
    torch.manual_seed(3)  # the same draws on the image replicated to RGB
    rgb_views = supcon_views(12, n_views=3)(gray.expand(-1, 3, -1, -1))
    assert views.shape == (6, 3, 1, 12, 12)
    torch.testing.assert_close(views, rgb_views.mean(2, keepdim=True))
    torch.testing.assert_close(rgb_views, rgb_views[:, :, :1].expand_as(rgb_views))  # stays gray
    assert not torch.allclose(views[:, 0], views[:, 1])


def test_supcon_views_of_one_image_for_dataloader_workers():
    image = torch.rand(3, 16, 16)
    torch.manual_seed(4)
    single = supcon_views(8, n_views=2)(image)
    torch.manual_seed(4)
    batched = supcon_views(8, n_views=2)(image.unsqueeze(0))
    assert single.shape == (2, 3, 8, 8)
    torch.testing.assert_close(single, batched[0])


def geometry(size: int) -> K.AugmentationSequential:
    return K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(),
        data_keys=["input", "mask"],
        extra_args={DataKey.MASK: {"resample": Resample.BILINEAR, "align_corners": None}},
    )


def test_saliency_stays_aligned_through_crop_and_flip():
    torch.manual_seed(1)
    saliency = torch.rand(16, 1, 32, 32)
    image = saliency.expand(-1, 3, -1, -1).contiguous()  # content equals the map
    image_out, saliency_out = geometry(24)(image, saliency)
    assert saliency_out.shape == (16, 1, 24, 24)
    torch.testing.assert_close(image_out[:, :1], saliency_out, atol=1e-5, rtol=0)
    # The warped map is smooth (bilinear), not nearest-neighbour copies of the input values.
    assert not torch.isin(saliency_out, saliency).all()
    view = SaliencyMask(fill="zero")(image_out, saliency_out)
    keep = SaliencyMask().mask(saliency_out, (24, 24)).bool().expand_as(view)
    assert torch.equal(view[keep], image_out[keep]) and view[~keep].eq(0).all()


def test_geometry_replayed_on_the_map_alone_matches():
    torch.manual_seed(2)
    x, saliency = torch.rand(4, 3, 16, 16), torch.rand(4, 1, 16, 16)
    geo = geometry(16)
    _, warped = geo(x, saliency)
    image_only = K.AugmentationSequential(
        K.RandomResizedCrop((16, 16), scale=(0.2, 1.0)), K.RandomHorizontalFlip()
    )
    replayed = image_only(saliency, params=geo._params)
    torch.testing.assert_close(replayed, warped, atol=1e-5, rtol=0)
