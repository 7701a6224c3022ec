"""SmoothGrad against a hand-written loop over images and samples, noise scale, wrapping."""

import pytest
import torch
import torch.nn.functional as F
from captum.attr import Saliency as CaptumSaliency

from explainaug.explain import Explainer, IntegratedGradients, Saliency, SmoothGrad


class Identity(Explainer):
    """Returns its (noisy) input: SmoothGrad's output then shows the noise itself."""

    def _attribute(self, x, target, create_graph):
        return x


class LowResolution(Explainer):
    """A CAM-like explainer: raw output [B, 1, 4, 4], maps upsampled to the input size."""

    def _attribute(self, x, target, create_graph):
        return F.avg_pool2d(x.mean(dim=1, keepdim=True), 4) * (1 + target[:, None, None, None])

    def _to_maps(self, raw, x):
        return F.interpolate(raw, size=x.shape[-2:], mode="nearest")


def loop_reference(x, target, nt_samples, stdev_spread, nt_type, seed, model):
    """One image and one sample at a time, with Captum's signed Saliency per sample."""
    noise = torch.randn(
        x.shape[0] * nt_samples, *x.shape[1:], generator=torch.Generator().manual_seed(seed)
    )
    saliency = CaptumSaliency(model)
    results = []
    for b in range(x.shape[0]):
        sigma = stdev_spread * (x[b].max() - x[b].min())
        samples = []
        for s in range(nt_samples):
            noisy = x[b : b + 1] + sigma * noise[b * nt_samples + s]
            samples.append(saliency.attribute(noisy, target=int(target[b]), abs=False)[0])
        samples = torch.stack(samples)
        if nt_type == "smoothgrad":
            results.append(samples.mean(dim=0))
        elif nt_type == "smoothgrad_sq":
            results.append((samples**2).mean(dim=0))
        else:
            results.append(samples.var(dim=0, unbiased=False))
    return torch.stack(results)


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_matches_a_loop_over_images_and_samples(cnn, images, labels, nt_type):
    smooth = SmoothGrad(
        Saliency(cnn, abs=False), nt_samples=4, stdev_spread=0.2, nt_type=nt_type, seed=7
    )
    expected = loop_reference(images, labels, 4, 0.2, nt_type, 7, cnn)
    ours = smooth.attribute(images, labels)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("internal_batch_size", [1, 5, 12])
def test_chunking_does_not_change_the_result(cnn, images, labels, internal_batch_size):
    # On the CPU, consecutive draws from one generator concatenate to a single draw.
    def make(size):
        return SmoothGrad(Saliency(cnn, abs=False), nt_samples=4, seed=3, internal_batch_size=size)

    torch.testing.assert_close(
        make(internal_batch_size).attribute(images, labels), make(None).attribute(images, labels)
    )


def test_seed_makes_calls_reproducible_and_none_draws_fresh_noise(cnn, images, labels):
    seeded = SmoothGrad(Saliency(cnn), nt_samples=3, seed=1)
    torch.testing.assert_close(seeded(images, labels), seeded(images, labels))
    unseeded = SmoothGrad(Saliency(cnn), nt_samples=3)
    assert not torch.equal(unseeded(images, labels), unseeded(images, labels))


def test_noise_std_is_proportional_to_each_images_range():
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(3, 3, 16, 16, generator=generator)
    x = torch.stack([base[0], 0.4 + 0.2 * base[1], torch.full_like(base[2], 0.7)])
    ranges = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    variance = SmoothGrad(
        Identity(model), nt_samples=400, stdev_spread=0.1, nt_type="vargrad", seed=0
    ).attribute(x, 0)
    std = variance.flatten(1).mean(dim=1).sqrt()
    torch.testing.assert_close(std[:2], 0.1 * ranges[:2], rtol=0.02, atol=0)
    assert float(std[2]) < 1e-5  # a constant image has range 0, so gets no noise
    mean = SmoothGrad(Identity(model), nt_samples=400, stdev_spread=0.1, seed=0).attribute(x, 0)
    torch.testing.assert_close(mean, x, rtol=0, atol=5 * 0.1 / 20)


class PixelLogits(torch.nn.Module):
    """Logit k is pixel (0, 0) of channel k, so the saliency of class k is one-hot there."""

    def forward(self, x):
        return x[:, :2, 0, 0]


def test_default_target_is_predicted_on_the_clean_image(images):
    x = images.clone()
    x[:, 0, 0, 0], x[:, 1, 0, 0] = 0.6, 0.5  # clean prediction: class 0
    smooth = SmoothGrad(Saliency(PixelLogits(), abs=False), nt_samples=20, stdev_spread=1.0, seed=2)
    noise = torch.randn(60, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    sigma = images.flatten(1).amax(1) - images.flatten(1).amin(1)
    noisy = x.repeat_interleave(20, 0) + sigma.repeat_interleave(20)[:, None, None, None] * noise
    assert bool((PixelLogits()(noisy).argmax(dim=1) == 1).any())  # noise flips some predictions
    attributions = smooth.attribute(x)
    assert bool((attributions[:, 0, 0, 0] == 1).all())
    assert bool((attributions[:, 1] == 0).all())


def test_wraps_integrated_gradients(cnn, images, labels):
    ig = IntegratedGradients(cnn, n_steps=3, internal_batch_size=5)
    ours = SmoothGrad(ig, nt_samples=2, seed=4).attribute(images, labels)
    noise = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    sigma = 0.15 * (images.flatten(1).amax(1) - images.flatten(1).amin(1))
    sigma = sigma.repeat_interleave(2)[:, None, None, None]
    noisy = images.repeat_interleave(2, dim=0) + sigma * noise
    expected = ig.attribute(noisy, labels.repeat_interleave(2)).view(3, 2, 3, 16, 16).mean(dim=1)
    torch.testing.assert_close(ours, expected)


def test_wraps_low_resolution_explainers_and_delegates_maps(cnn, images, labels):
    smooth = SmoothGrad(LowResolution(cnn), nt_samples=3, seed=0)
    raw = smooth.attribute(images, labels)
    assert raw.shape == (3, 1, 4, 4)
    upsampled = raw.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    torch.testing.assert_close(smooth(images, labels), upsampled)
    assert smooth.model is cnn


@pytest.mark.parametrize("nt_type", ["smoothgrad", "vargrad"])
def test_create_graph_maps_have_finite_difference_parameter_gradients(
    smooth_cnn, images, labels, check_parameter_gradients, nt_type
):
    smooth = SmoothGrad(
        Saliency(smooth_cnn, abs=False),
        nt_samples=3,
        nt_type=nt_type,
        internal_batch_size=4,
        seed=0,
    )
    check_parameter_gradients(smooth, images.double(), labels)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nt_type": "mean"}, ValueError, "nt_type must be one of"),
        ({"nt_samples": 0}, ValueError, "nt_samples must be an int >= 1"),
        ({"nt_samples": 2.5}, ValueError, "nt_samples must be an int >= 1, got 2.5"),
        ({"internal_batch_size": 0}, ValueError, "internal_batch_size must be None or an int >= 1"),
        ({"stdev_spread": -0.1}, ValueError, "stdev_spread must be a finite number > 0"),
        ({"seed": 1.5}, TypeError, "seed must be None or an int"),
    ],
)
def test_bad_arguments_are_rejected(cnn, kwargs, error, match):
    with pytest.raises(error, match=match):
        SmoothGrad(Saliency(cnn), **kwargs)


def test_wrapping_a_model_instead_of_an_explainer_is_rejected(cnn):
    with pytest.raises(TypeError, match="explainer must be an explainaug Explainer"):
        SmoothGrad(cnn)


@pytest.mark.gpu
def test_seeded_noise_on_cuda_is_reproducible(cnn, images, labels):
    smooth = SmoothGrad(Saliency(cnn.cuda()), nt_samples=4, internal_batch_size=5, seed=0)
    first = smooth(images.cuda(), labels.cuda())
    assert first.device.type == "cuda"
    torch.testing.assert_close(first, smooth(images.cuda(), labels.cuda()))
