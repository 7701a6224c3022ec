"""What every masking augmentation shares: Kornia-style ``p``, ``same_on_batch``, ``keepdim``
and replay, the fill blend and the input checks.

These are plain ``nn.Module``s, not ``kornia.augmentation.AugmentationBase2D``: Kornia 0.9 has no
supported way to pass a second per-sample input (the map), and its handling of ``p < 1`` changed
between 0.8 and 0.9, which would misalign per-sample maps. They mirror Kornia's arguments instead:
``p`` is a per-image Bernoulli draw, ``same_on_batch`` draws once for the batch, ``keepdim``
returns ``[C, H, W]`` for a ``[C, H, W]`` input, and ``forward(..., params=aug._params)`` replays
the last draw. A draw's ``params``: ``batch_prob`` (bool ``[B]``), ``keep`` (float
``[B, 1, H, W]``, 1 keeps a pixel) and, for ``fill="noise"``, ``noise`` (``[B, C, H, W]``). The
output is ``where(batch_prob, lerp(fill, x, keep), x)``: kept pixels come back unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from explainaug._shared import pixel_counts
from explainaug._validation import (
    check_channels_first,
    check_fraction,
    check_maps,
    check_positive,
    check_tensor,
)
from explainaug.augment.fills import Fill, FillSpec
from explainaug.augment.masks import (
    normalized_saliency,
    rank_selection,
    threshold_selection,
)


class MaskAugmentationBase(nn.Module):
    """Base of the masking augmentations: fills ``1 - keep`` of each selected image.

    Subclasses build the keep mask in :meth:`_keep_mask`. Images are float in [0, 1],
    ``[B, C, H, W]`` or a single ``[C, H, W]``. These options are shared by every augmentation.

    Args:
        fill: ``"mean"``, ``"zero"``, ``"blur"``, ``"noise"`` or a number in [0, 1] (see
            :mod:`explainaug.augment.fills`).
        mean: per-channel dataset mean in [0, 1] for ``fill="mean"`` (default: each image's mean).
        blur_sigma: Gaussian standard deviation in pixels for ``fill="blur"``.
        p: probability that an image is augmented (images not drawn pass through unchanged).
        same_on_batch: draw the random choices once and use them for the whole batch.
        keepdim: return ``[C, H, W]`` for a ``[C, H, W]`` input (else ``[1, C, H, W]``).
        check_values: check on every call that images lie in [0, 1] and maps are finite (host
            syncs); training steps that feed known-good tensors turn it off.
    """

    #: Whether ``forward`` needs saliency maps (unless ``params`` replays a draw).
    needs_saliency = False

    def __init__(
        self,
        *,
        fill: FillSpec = "mean",
        mean: Sequence[float] | Tensor | None = None,
        blur_sigma: float = 2.0,
        p: float = 1.0,
        same_on_batch: bool = False,
        keepdim: bool = False,
        check_values: bool = True,
    ) -> None:
        super().__init__()
        self.check_values = bool(check_values)
        self.fill = Fill(fill, mean, blur_sigma)
        self.p = check_fraction(p, "p", closed=True)
        self.same_on_batch = bool(same_on_batch)
        self.keepdim = bool(keepdim)
        self._params: dict[str, Tensor] = {}

    def forward(
        self,
        x: Tensor,
        saliency: Tensor | None = None,
        *,
        ratio: float | Tensor | None = None,
        params: dict[str, Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Augment images ``x`` in [0, 1]; ``params`` replays a draw (maps unused).

        Args:
            x: ``[B, C, H, W]`` or ``[C, H, W]`` in [0, 1].
            saliency: ``[B, 1, h, w]`` or ``[B, h, w]`` (``[h, w]`` or ``[1, h, w]`` for one
                image), any resolution and floating dtype; required by the saliency-driven
                augmentations unless ``params`` is given, ignored by the random ones.
            ratio: this call's ratio, a number or ``Tensor[B]`` (saliency-driven ones: ratio
                mode only).
            params: ``aug._params`` of an earlier call, to replay its masks and selection.
            generator: random generator for the ``p`` draw, the noise fill, random masks and
                the tie-breaking of ratio-mode selections.
        """
        if self.needs_saliency and params is None and saliency is None:
            raise ValueError(
                f"{type(self).__name__} needs saliency maps (or params= to replay a draw)"
            )
        batch = as_image_batch(x, check_values=self.check_values)
        if params is None:
            params = {
                "batch_prob": self._draw_selection(batch, generator),
                "keep": self._keep_mask(batch, saliency, ratio, generator, x.ndim == 3),
            }
            noise = self.fill.draw(batch, generator, self.same_on_batch)
            if noise is not None:
                params["noise"] = noise
        else:
            _check_params(params, batch, self.fill.random)
        keep = params["keep"].to(batch.dtype)
        # lerp is exact at keep == 1 (and 0): kept pixels come back bit for bit, in any range
        filled = torch.lerp(self.fill(batch, params.get("noise")).expand_as(batch), batch, keep)
        out = torch.where(params["batch_prob"].view(-1, 1, 1, 1), filled, batch)
        self._params = params
        return out[0] if x.ndim == 3 and self.keepdim else out

    def _draw_selection(self, batch: Tensor, generator: torch.Generator | None) -> Tensor:
        size = batch.shape[0]
        if self.p in (0.0, 1.0):
            return torch.full((size,), self.p == 1.0, dtype=torch.bool, device=batch.device)
        draws = 1 if self.same_on_batch else size
        chosen = torch.rand(draws, generator=generator, device=batch.device) < self.p
        return chosen.expand(size)

    def _keep_mask(
        self,
        batch: Tensor,
        saliency: Tensor | None,
        ratio: float | Tensor | None,
        generator: torch.Generator | None,
        single: bool,
    ) -> Tensor:
        """The keep mask ``[B, 1, H, W]`` of ``batch`` (``single``: ``x`` was one image)."""
        raise NotImplementedError

    def _check_ratio(
        self, ratio: float | Tensor, batch_size: int, device: torch.device | str
    ) -> float | Tensor:
        """A per-call ``ratio``: a number in [0, 1] or a float ``Tensor[B]`` on the images' device."""
        if not isinstance(ratio, Tensor):
            return check_fraction(ratio, "ratio", closed=True)
        if ratio.shape != (batch_size,) or not ratio.is_floating_point():
            raise ValueError(
                f"ratio must be a float tensor of shape [{batch_size}], got {ratio.dtype} "
                f"{tuple(ratio.shape)}"
            )
        device = torch.device(device)
        if ratio.device.type != device.type or (
            device.index is not None and ratio.device.index != device.index
        ):
            raise ValueError(f"ratio is on {ratio.device} but the images are on {device}")
        if self.check_values and not bool(((ratio >= 0) & (ratio <= 1)).all()):
            raise ValueError(f"ratio values must lie in [0, 1] (no NaN), got {ratio.tolist()}")
        return ratio

    def extra_repr(self) -> str:
        return f"p={self.p}, same_on_batch={self.same_on_batch}, keepdim={self.keepdim}"


class SaliencyAugmentationBase(MaskAugmentationBase):
    """Base of the saliency-driven augmentations: the keep mask is a function of the map.

    Per image the map is resized bilinearly to the image and min-max normalised (a constant map
    normalises to zeros). A selection is made either by ``threshold`` (normalised saliency
    ``> threshold``) or by ``ratio`` (exactly ``round(ratio * H * W)`` pixels by rank, ties drawn
    at random, see :mod:`explainaug.augment.masks`); giving both raises, giving neither uses the
    subclass's default mode. Subclasses implement :meth:`_keep` through :meth:`_selection`.

    Args:
        threshold: select normalised saliency above this value (in [0, 1]).
        ratio: select exactly this fraction of pixels by rank instead (in [0, 1]);
            ``forward(..., ratio=)`` overrides it per call.
        soft: sigmoid selection around the threshold (or the rank boundary); gradients then
            reach the map.
        temperature: the sigmoid's temperature.
        **options: ``fill``, ``mean``, ``blur_sigma``, ``p``, ``same_on_batch``, ``keepdim``,
            ``check_values`` of :class:`MaskAugmentationBase`.
    """

    default_threshold: float | None = None
    default_ratio: float | None = None
    needs_saliency = True

    def __init__(
        self,
        threshold: float | None = None,
        *,
        ratio: float | None = None,
        soft: bool = False,
        temperature: float = 0.05,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if threshold is not None and ratio is not None:
            raise ValueError(
                f"give threshold= or ratio=, not both; got threshold={threshold}, ratio={ratio}"
            )
        if threshold is None and ratio is None:
            threshold, ratio = self.default_threshold, self.default_ratio
        self.threshold = (
            None if threshold is None else check_fraction(threshold, "threshold", closed=True)
        )
        self.ratio = None if ratio is None else check_fraction(ratio, "ratio", closed=True)
        self.soft = bool(soft)
        self.temperature = check_positive(temperature, "temperature")

    def mask(
        self,
        saliency: Tensor,
        size: tuple[int, int],
        *,
        ratio: float | Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The keep mask ``[B, 1, *size]`` (1 = kept) for maps ``[B, 1, h, w]`` or ``[B, h, w]``.

        The maps (any resolution, finite) are resized bilinearly to ``size`` and min-max
        normalised per image before :meth:`_keep`. ``ratio`` (a number or ``Tensor[B]``)
        replaces the constructor's ratio for this call; threshold-mode augmentations reject it.
        ``generator`` draws the random tie-breaking of ratio-mode selections (``None``: torch's
        global generator).
        """
        # checks only the maps' own shape and values
        saliency = check_maps(saliency, saliency, finite=self.check_values)
        if ratio is not None:
            if self.threshold is not None:
                raise ValueError(
                    f"{type(self).__name__} selects by threshold={self.threshold}; a per-call "
                    "ratio= needs one built with ratio= (give threshold= or ratio=, not both)"
                )
            ratio = self._check_ratio(ratio, saliency.shape[0], saliency.device)
        scores = normalized_saliency(saliency, (int(size[0]), int(size[1])))
        return self._keep(scores, self.ratio if ratio is None else ratio, generator)

    def _keep(
        self, scores: Tensor, ratio: float | Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        raise NotImplementedError

    def _selection(
        self,
        scores: Tensor,
        ratio: float | Tensor | None,
        largest: bool,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Pixels above the threshold (below it when not ``largest``), or the ``ratio`` top
        (bottom) pixels by rank, ties drawn from ``generator``."""
        if self.threshold is not None:
            return threshold_selection(
                scores, self.threshold, above=largest, soft=self.soft, temperature=self.temperature
            )
        counts = pixel_counts(ratio, scores[0].numel(), scores.shape[0], scores.device)
        return rank_selection(
            scores,
            counts,
            largest=largest,
            soft=self.soft,
            temperature=self.temperature,
            generator=generator,
        )

    def _keep_mask(
        self,
        batch: Tensor,
        saliency: Tensor | None,
        ratio: float | Tensor | None,
        generator: torch.Generator | None,
        single: bool,
    ) -> Tensor:
        maps = as_map_batch(saliency, batch, single=single, finite=False)
        return self.mask(maps, batch.shape[-2:], ratio=ratio, generator=generator)

    def _mode_repr(self) -> str:
        if self.threshold is not None:
            return f"threshold={self.threshold}"
        return f"ratio={self.ratio}"


def as_image_batch(x: object, name: str = "x", *, check_values: bool = True) -> Tensor:
    """Check images in [0, 1], ``[B, C, H, W]`` or ``[C, H, W]``; return them as a batch.

    ``check_values`` checks the range (one host-device sync); shapes are always checked,
    including the channels-last mistake (see :func:`~explainaug._validation.check_channels_first`).

    Example:
        >>> as_image_batch(torch.zeros(3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """
    x = check_tensor(x, name)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape [B, C, H, W] or [C, H, W], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got dtype {x.dtype}")
    batch = x.unsqueeze(0) if x.ndim == 3 else x
    if batch.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    check_channels_first(batch, name)
    if not check_values:
        return batch
    low, high = torch.aminmax(batch)  # one pass; NaN propagates and fails both comparisons
    if not bool((low >= 0) & (high <= 1)):
        raise ValueError(
            f"{name} must be finite and in [0, 1], got values in [{float(low)}, {float(high)}]"
        )
    return batch


def as_map_batch(saliency: object, batch: Tensor, single: bool, *, finite: bool = True) -> Tensor:
    """Check maps for ``batch`` and return them as ``[B, 1, h, w]`` in the images' dtype.

    For a single image (``single``) the map may be ``[h, w]``, ``[1, h, w]`` or ``[1, 1, h, w]``;
    for a batch, ``[B, 1, h, w]`` or ``[B, h, w]``.

    Example:
        >>> as_map_batch(torch.rand(4, 4), torch.zeros(1, 3, 8, 8), single=True).shape
        torch.Size([1, 1, 4, 4])
    """
    saliency = check_tensor(saliency, "saliency")
    if single and saliency.ndim in (2, 3):
        if saliency.ndim == 3 and saliency.shape[0] != 1:
            raise ValueError(
                f"saliency for one image must be [h, w] or [1, h, w], got {tuple(saliency.shape)}"
            )
        saliency = saliency.reshape(1, 1, *saliency.shape[-2:])
    return check_maps(saliency, batch, finite=finite).to(batch.dtype)


def _check_params(params: dict[str, Tensor], batch: Tensor, needs_noise: bool) -> None:
    expected = {"batch_prob": (batch.shape[0],), "keep": (batch.shape[0], 1, *batch.shape[2:])}
    if needs_noise:
        expected["noise"] = tuple(batch.shape)
    for key, shape in expected.items():
        value = params.get(key)
        if not isinstance(value, Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else value
            raise ValueError(f"params[{key!r}] must be a tensor of shape {shape}, got {got}")
        if value.device != batch.device:
            raise ValueError(f"params[{key!r}] is on {value.device}, the images on {batch.device}")
