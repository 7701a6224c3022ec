"""CIFAR-C corruptions: range, quantisation, severity ordering, and reference oracles
(hand formulas, scipy, scikit-image, Pillow, and numpy ports of make_cifar_c.py)."""

import io
import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian as sk_gaussian

from explainaug.data import CORRUPTIONS, corrupt, shapes
from explainaug.data.corruptions import _CORRUPTION_FUNCTIONS
from explainaug.data.filters import motion_blur

# Parameters of make_cifar_c.py whose pixel distance to the clean image is not monotonic by design:
# glass_blur's severities 3->4 and 4->5 trade blur for shuffling, and elastic_transform's affine
# part shrinks (2.6 -> 1.0 px) while its local displacement grows.
NOT_MONOTONIC = {"glass_blur", "elastic_transform"}


@pytest.fixture(scope="module")
def images():
    return shapes(n=16, size=32, seed=3).images.float() / 255


def to_numpy_hwc(x):
    return x.permute(0, 2, 3, 1).double().numpy()


def from_numpy_hwc(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float()


def quantize(a):
    return np.floor(np.clip(a, 0, 1) * 255) / 255


def assert_matches(name, images, severity, expected_unquantized):
    """Unquantised values equal the float64 reference; the 8-bit output is within one level
    (truncation of values within float32 rounding of a level boundary may differ)."""
    raw = _CORRUPTION_FUNCTIONS[name](images, severity - 1, None).clamp(0, 1)
    expected = from_numpy_hwc(np.clip(expected_unquantized, 0, 1))
    assert torch.allclose(raw, expected, atol=2e-6), float((raw - expected).abs().max())
    out = corrupt(images, name, severity)
    assert (out - from_numpy_hwc(quantize(expected_unquantized))).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_stays_in_range_quantised_and_orders_severities(images, name):
    distances = []
    for severity in range(1, 6):
        out = corrupt(images, name, severity, torch.Generator().manual_seed(0))
        assert out.shape == images.shape and out.dtype == images.dtype
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        assert torch.equal(out * 255, (out * 255).round())
        distances.append(float((out - images).abs().mean()))
    assert distances[0] > 0
    if name not in NOT_MONOTONIC:
        assert all(b >= a - 1e-6 for a, b in itertools.pairwise(distances)), distances
        assert distances[4] > distances[0] * 1.2, distances


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_same_generator_seed_gives_the_same_output(images, name):
    first = corrupt(images[:4], name, 3, torch.Generator().manual_seed(7))
    assert torch.equal(first, corrupt(images[:4], name, 3, torch.Generator().manual_seed(7)))


def test_gaussian_shot_impulse_noise_match_their_formulas(images):
    for severity, sigma in zip(range(1, 6), (0.04, 0.06, 0.08, 0.09, 0.10), strict=False):
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(severity))
        expected = torch.floor((images + sigma * noise).clamp(0, 1) * 255) / 255
        generator = torch.Generator().manual_seed(severity)
        out = corrupt(images, "gaussian_noise", severity, generator)
        assert torch.equal(out, expected)
    photons = 100
    counts = torch.poisson(images * photons, generator=torch.Generator().manual_seed(1))
    expected = torch.floor((counts / photons).clamp(0, 1) * 255) / 255
    assert torch.equal(corrupt(images, "shot_noise", 3, torch.Generator().manual_seed(1)), expected)
    generator = torch.Generator().manual_seed(2)
    flipped = torch.rand(images.shape, generator=generator) < 0.07
    salt = torch.rand(images.shape, generator=generator) < 0.5
    expected = torch.floor(torch.where(flipped, salt.float(), images) * 255) / 255
    out = corrupt(images, "impulse_noise", 5, torch.Generator().manual_seed(2))
    assert torch.equal(out, expected)
    assert abs(float((out != images).float().mean()) - 0.07) < 0.01  # amount = 0.07


def test_contrast_and_brightness_match_the_reference(images):
    x = to_numpy_hwc(images)
    for severity, factor in zip(range(1, 6), (0.75, 0.5, 0.4, 0.3, 0.15), strict=False):
        means = x.mean(axis=(1, 2), keepdims=True)
        assert_matches("contrast", images, severity, (x - means) * factor + means)
    for severity, shift in zip(range(1, 6), (0.05, 0.1, 0.15, 0.2, 0.3), strict=False):
        hsv = rgb2hsv(x, channel_axis=-1)
        hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0, 1)
        assert_matches("brightness", images, severity, hsv2rgb(hsv, channel_axis=-1))


def test_brightness_of_black_is_grey_of_the_shift():
    out = corrupt(torch.zeros(1, 3, 4, 4), "brightness", 5)
    assert torch.allclose(out, torch.full_like(out, np.floor(0.3 * 255) / 255))


def reference_disk(radius, alias_blur):
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.exp(-(np.arange(-1, 2) ** 2) / (2 * alias_blur**2))  # cv2.getGaussianKernel(3, s)
    taps /= taps.sum()
    return ndi.correlate(disk, np.outer(taps, taps), mode="constant")


def test_defocus_blur_matches_the_disk_kernel_with_reflect_101_borders(images):
    x = to_numpy_hwc(images)
    params = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]
    for severity, (radius, alias_blur) in enumerate(params, 1):
        kernel = reference_disk(radius, alias_blur)
        blurred = np.stack(
            [ndi.correlate(x[..., c], kernel[None], mode="mirror") for c in range(3)], axis=-1
        )
        assert_matches("defocus_blur", images, severity, blurred)


def reference_clipped_zoom(img, zoom_factor):
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = ndi.zoom(img[top : top + ch, top : top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top : trim_top + h, trim_top : trim_top + h]


def test_zoom_blur_matches_scipy_zoom(images):
    x = to_numpy_hwc(images[:4])
    for severity, stop in zip(range(1, 6), (1.06, 1.11, 1.16, 1.21, 1.26), strict=False):
        zooms = np.arange(1, stop, 0.01)
        expected = np.stack(
            [
                (im + sum(reference_clipped_zoom(im, z) for z in zooms)) / (len(zooms) + 1)
                for im in x
            ]
        )
        assert_matches("zoom_blur", images[:4], severity, expected)


def pillow(images, transform):
    pixels = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    out = [np.asarray(transform(Image.fromarray(p)).convert("RGB")) for p in pixels]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def test_pixelate_matches_pillow_box_resize(images):
    for severity, factor in zip(range(1, 6), (0.95, 0.9, 0.85, 0.75, 0.65), strict=False):
        size = int(32 * factor)
        expected = pillow(
            images, lambda im, s=size: im.resize((s, s), Image.BOX).resize((32, 32), Image.BOX)
        )
        assert torch.equal(corrupt(images, "pixelate", severity), expected)


def test_jpeg_is_close_to_pillow(images):
    for severity, quality in zip(range(1, 6), (80, 65, 58, 50, 40), strict=False):

        def jpeg(im, q=quality):
            buffer = io.BytesIO()
            im.save(buffer, "JPEG", quality=q)
            return Image.open(buffer)

        expected = pillow(images, jpeg)
        out = corrupt(images, "jpeg_compression", severity)
        error = float((out - expected).abs().mean())
        assert error < 0.25 * float((expected - images).abs().mean())  # ~0.7 vs ~6.5 levels


def reference_glass_blur(x, severity, rng):
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][
        severity - 1
    ]
    x = np.uint8(sk_gaussian(x, sigma=sigma, channel_axis=-1) * 255)
    for _ in range(iterations):
        for h in range(32 - delta, delta, -1):
            for w in range(32 - delta, delta, -1):
                dx, dy = rng.randint(-delta, delta, size=(2,))
                x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
    return np.clip(sk_gaussian(x / 255.0, sigma=sigma, channel_axis=-1), 0, 1)


def test_glass_blur_matches_the_reference_distribution(images):
    rng = np.random.RandomState(0)
    x = to_numpy_hwc(images[:8])
    for severity in (2, 5):
        expected = np.stack([quantize(reference_glass_blur(im, severity, rng)) for im in x])
        out = to_numpy_hwc(
            corrupt(images[:8], "glass_blur", severity, torch.Generator().manual_seed(0))
        )
        reference_distance, our_distance = np.abs(expected - x).mean(), np.abs(out - x).mean()
        assert our_distance == pytest.approx(reference_distance, rel=0.1)


def test_motion_blur_kernel_is_one_sided_gaussian_with_edge_repeat():
    x = torch.rand(2, 3, 6, 10)
    taps = np.exp(-(np.arange(5) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()
    expected = sum(w * x[..., np.minimum(np.arange(10) + i, 9)] for i, w in enumerate(taps))
    out = motion_blur(x, 2, 1.5, torch.zeros(2))  # angle 0: along +x
    assert torch.allclose(out, torch.round(expected * 255) / 255, atol=1 / 255 + 1e-6)
    down = motion_blur(x, 2, 1.5, torch.full((2,), 90.0))  # angle 90: along +y (rows)
    expected = sum(w * x[:, :, np.minimum(np.arange(6) + i, 5)] for i, w in enumerate(taps))
    assert torch.allclose(down, torch.round(expected * 255) / 255, atol=1 / 255 + 1e-6)


def test_fog_and_frost_keep_image_content(images):
    for name in ("fog", "frost"):
        out = corrupt(images, name, 1, torch.Generator().manual_seed(0))
        correlation = np.corrcoef(out.flatten().numpy(), images.flatten().numpy())[0, 1]
        assert correlation > 0.7


def test_corrupt_rejects_bad_inputs(images):
    with pytest.raises(ValueError, match="gaussian_noise, shot_noise"):
        corrupt(images, "rain", 1)
    for severity in (0, 6, 2.0, True):
        with pytest.raises(ValueError, match="severity"):
            corrupt(images, "fog", severity)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(images * 2, "fog", 1)
    with pytest.raises(ValueError, match="RGB"):
        corrupt(images[:, :1], "fog", 1)
    with pytest.raises(TypeError):
        corrupt((images * 255).byte(), "fog", 1)


@pytest.mark.gpu
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_run_on_cuda(images, name):
    x = images.cuda()
    out = corrupt(x, name, 5, torch.Generator(device="cuda").manual_seed(0))
    assert out.device == x.device and float(out.min()) >= 0 and float(out.max()) <= 1
    deterministic = {
        "defocus_blur",
        "zoom_blur",
        "brightness",
        "contrast",
        "pixelate",
        "jpeg_compression",
    }
    if name in deterministic:
        assert torch.allclose(out.cpu(), corrupt(images, name, 5), atol=1 / 255 + 1e-6)
