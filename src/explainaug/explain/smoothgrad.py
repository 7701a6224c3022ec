"""SmoothGrad (Smilkov et al., 2017) and its squared and variance variants, around any explainer.

Images are float ``[B, C, H, W]`` in [0, 1]. Noise is Gaussian with a standard deviation of
``stdev_spread * (max - min)`` of each image, as in Smilkov et al. and Adebayo et al.; Captum's
``NoiseTunnel`` instead takes an absolute ``stdevs``. ``nt_type`` and ``nt_samples`` carry Captum's names and
meanings; the chunk size is ``internal_batch_size``, a count of noisy images per pass as in
Captum's ``IntegratedGradients`` and this package's IG and IG-CAM (Captum's
``nt_samples_batch_size`` counts samples per input image instead).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainaug._shared import image_step_chunks
from explainaug._validation import check_count, check_positive
from explainaug.explain._base import Explainer
from explainaug.explain.gradient import Saliency

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


class SmoothGrad(Explainer):
    """Average an explainer's raw attributions over noisy copies of each image.

    All ``B * nt_samples`` noisy images go through the wrapped explainer as one flat batch,
    split into chunks of ``internal_batch_size``. The explained class is fixed for every sample:
    the given target, or the class predicted on the clean image.

    Args:
        explainer: any explainer of this package (input-gradient or CAM); its model is used.
        nt_samples: noisy copies per image.
        stdev_spread: noise standard deviation as a fraction of each image's value range.
        nt_type: ``"smoothgrad"`` (mean), ``"smoothgrad_sq"`` (mean of squares) or
            ``"vargrad"`` (variance), as Captum's ``NoiseTunnel``.
        internal_batch_size: noisy images per call of the wrapped explainer; ``None``: all.
        seed: seed a fresh generator on every call for reproducible noise (the noise then
            also depends on ``internal_batch_size``); ``None`` uses torch's global generator.

    Example:
        >>> from explainaug.explain import Saliency
        >>> from explainaug.models import SmallCNN
        >>> smooth = SmoothGrad(Saliency(SmallCNN(num_classes=3, width=4).eval()), nt_samples=4)
        >>> smooth(torch.rand(2, 3, 8, 8), target=1).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        explainer: Explainer,
        *,
        nt_samples: int = 50,
        stdev_spread: float = 0.15,
        nt_type: str = "smoothgrad",
        internal_batch_size: int | None = None,
        seed: int | None = None,
        check_values: bool = True,
    ) -> None:
        if not isinstance(explainer, Explainer):
            raise TypeError(
                f"explainer must be an explainaug Explainer, got {type(explainer).__name__}"
            )
        super().__init__(explainer.model, check_values=check_values)
        if nt_type not in NT_TYPES:
            raise ValueError(f"nt_type must be one of {', '.join(NT_TYPES)}; got {nt_type!r}")
        check_count(nt_samples, "nt_samples")
        check_count(internal_batch_size, "internal_batch_size", optional=True)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be None or an int, got {type(seed).__name__}")
        self.explainer = explainer
        self.differentiable = explainer.differentiable
        self.nt_samples = nt_samples
        self.stdev_spread = check_positive(stdev_spread, "stdev_spread")
        self.nt_type = nt_type
        self.internal_batch_size = internal_batch_size
        self.seed = seed

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        if target is None:
            target = self._predicted(x)
        flat_x = x.flatten(1)
        sigma = self.stdev_spread * (flat_x.amax(dim=1) - flat_x.amin(dim=1))
        generator = None
        if self.seed is not None:
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        # Running per-image mean and sum of squared deviations, merged chunk by chunk (Chan et
        # al.), so the variance never subtracts two large, nearly equal numbers.
        count: Tensor | float = 0.0
        mean: Tensor | float = 0.0
        deviations: Tensor | float = 0.0
        chunks = image_step_chunks(x.shape[0], self.nt_samples, self.internal_batch_size, x.device)
        for _, image, _ in chunks:
            clean = x[image]
            noise = torch.randn(clean.shape, generator=generator, device=x.device, dtype=x.dtype)
            noisy = clean + sigma[image, None, None, None] * noise
            raw = self.explainer._attribute(noisy, target[image], create_graph)
            zeros = raw.new_zeros((x.shape[0], *raw.shape[1:]))
            shape = (x.shape[0],) + (1,) * (raw.ndim - 1)
            chunk_count = torch.bincount(image, minlength=x.shape[0]).to(raw.dtype).view(shape)
            chunk_mean = zeros.index_add(0, image, raw) / chunk_count.clamp_min(1)
            chunk_deviations = zeros.index_add(0, image, (raw - chunk_mean[image]) ** 2)
            new_count = count + chunk_count
            share = chunk_count / new_count.clamp_min(1)
            step = chunk_mean - mean
            mean = mean + step * share
            deviations = deviations + chunk_deviations + step**2 * count * share
            count = new_count
        if self.nt_type == "smoothgrad":
            return mean
        variance = deviations / self.nt_samples
        return variance if self.nt_type == "vargrad" else variance + mean**2

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        return self.explainer._to_maps(raw, x)

    def __repr__(self) -> str:
        return (
            f"SmoothGrad({self.explainer!r}, nt_samples={self.nt_samples}, "
            f"stdev_spread={self.stdev_spread}, nt_type={self.nt_type!r})"
        )


def smoothgrad(model: nn.Module, **options: object) -> SmoothGrad:
    """SmoothGrad of a plain gradient of ``model``: the registry's ``"smoothgrad"`` (``abs=`` and
    ``check_values=`` go to the gradient too).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> smoothgrad(SmallCNN(num_classes=4, width=4), nt_samples=4).nt_samples
        4
    """
    check_values = bool(options.pop("check_values", True))
    gradient = Saliency(model, abs=bool(options.pop("abs", True)), check_values=check_values)
    return SmoothGrad(gradient, check_values=check_values, **options)
