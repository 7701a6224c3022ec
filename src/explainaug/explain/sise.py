"""SISE and Ada-SISE: semantic input sampling for explanation, batched over images.

SISE (Sattarzadeh et al., AAAI 2021) explains a class score in four phases:

1. one forward/backward pass records the feature maps ``A^k_l`` of several layers ``l`` (by
   default the last layer of every block: the input of each downsampling step plus the last
   block's output) and the mean gradient ``alpha^k_l`` of the class score per channel;
2. channels with a positive gradient are kept (``alpha > mu * max_k alpha``);
3. each kept map, upsampled and min-max normalised, masks the image; the class score of the
   masked image weights the mask: ``V_l = sum_k s(x * m_k) m_k / sum(m_k)``, then min-max;
4. the layer maps are fused from low to high layers: ``F_l = (F_{l-1} + V_l) * B_l`` with
   ``B_l`` an Otsu gate of ``V_l`` (a hard mask, or the authors' code's steep sigmoid).

Ada-SISE (ICASSP 2021) replaces the fixed ``mu`` with an Otsu threshold of the normalised
gradients, per image and layer. All selected (image, layer, channel) triples are flattened and
scored in chunks of ``internal_batch_size`` masked images, so no Python loop runs over images.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from explainaug._shared import eval_mode, minmax_normalize, preserved_model_state, upsample
from explainaug._validation import check_count, check_positive
from explainaug.explain._base import (
    Explainer,
    captured_outputs,
    class_scores,
)
from explainaug.explain.cam import Reshape, as_feature_maps, check_reshape
from explainaug.explain.layers import LayerSpec, resolve_layer
from explainaug.explain.otsu import bin_counts, otsu_split, rows_otsu_threshold

SCORES = ("probability", "logit")
FUSIONS = ("sigmoid", "binary")
OTSU_BINS = 256


def block_output_layers(model: nn.Module, example: Tensor) -> list[str]:
    """The layers SISE explains by default: the last layer of every convolutional block.

    One forward pass of ``example`` (no gradient, eval mode, model state preserved) records the
    output shape of every module. The search starts at the model's top-level children; when a single child
    container holds all spatial layers and its siblings with spatial outputs have no parameters
    (e.g. ``ContrastiveModel.encoder``, torchvision VGG's ``features``), it descends into that
    child. Among the children, in forward order and starting from the first one with parameters
    (input normalisation is skipped), those with a 4-D output of spatial size > 1 are the
    candidates; a candidate is chosen when the next candidate is spatially smaller (it is the
    input of a pooling or strided step), and so is the last candidate unless it is a
    parameter-free pooling of a chosen one (VGG's final max-pool: its input is already chosen).

    On ``CifarResNet`` (no max-pool in the stem) this gives ``layer1`` ... ``layer4``; on
    ``SmallCNN`` ``block1``, ``block2``, ``block3``; on torchvision's ResNet ``relu`` (the
    max-pool input) and ``layer1`` ... ``layer4``, and on VGG the ReLUs before the five max-pools,
    as in the paper. ``example``: images of the size that will be explained. Returns dotted
    module names, from low to high layers.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> block_output_layers(SmallCNN(width=4), torch.zeros(1, 3, 32, 32))
        ['block1', 'block2', 'block3']
    """
    order: dict[nn.Module, int] = {}
    spatial_size: dict[nn.Module, int] = {}

    def record(module: nn.Module, _inputs: tuple, output: object) -> None:
        if module in order:
            return
        order[module] = len(order)
        if isinstance(output, Tensor) and output.ndim == 4:
            spatial_size[module] = output.shape[2] * output.shape[3]

    with ExitStack() as stack:
        for module in model.modules():
            if module is not model:
                stack.callback(module.register_forward_hook(record).remove)
        with preserved_model_state(model), eval_mode(model), torch.no_grad():
            model(example)  # eval mode: BatchNorm takes the one example image

    def is_spatial(module: nn.Module) -> bool:
        return spatial_size.get(module, 0) > 1

    def holds_spatial(module: nn.Module, *, below: bool) -> bool:
        modules = list(module.modules())
        return any(is_spatial(inner) for inner in (modules[1:] if below else modules))

    parent, prefix = model, ""
    while True:
        called = sorted(
            ((name, child) for name, child in parent.named_children() if child in order),
            key=lambda item: order[item[1]],
        )
        holders = [(name, child) for name, child in called if holds_spatial(child, below=False)]
        containers = [(name, child) for name, child in holders if holds_spatial(child, below=True)]
        others_plain = all(
            next(child.parameters(), None) is None
            for name, child in holders
            if (name, child) not in containers
        )
        if len(containers) != 1 or not others_plain:
            break
        name, parent = containers[0]
        prefix = f"{prefix}{name}."

    learned = [next(child.parameters(), None) is not None for _, child in called]
    first_learned = learned.index(True) if True in learned else len(called)
    candidates = [(name, child) for name, child in called[first_learned:] if is_spatial(child)]
    if not candidates:
        raise ValueError(
            f"found no layer with a spatial 4-D output in {type(model).__name__}; "
            "pass layers= (modules or dotted names) explicitly"
        )
    chosen = [
        name
        for (name, child), (_, after) in zip(candidates, candidates[1:], strict=False)
        if spatial_size[after] < spatial_size[child]
    ]
    last_name, last = candidates[-1]
    pooled_last = (
        next(last.parameters(), None) is None
        and len(candidates) > 1
        and candidates[-2][0] in chosen
    )
    if not pooled_last:
        chosen.append(last_name)
    return [f"{prefix}{name}" for name in chosen]


def cascade_fusion(maps: Tensor, fusion: str = "sigmoid", temperature: float = 100.0) -> Tensor:
    """Fuse per-layer maps ``[B, L, H, W]`` (in [0, 1], low to high layers) into ``[B, 1, H, W]``.

    ``F_1 = V_1`` and ``F_l = (F_{l-1} + V_l) * gate(V_l)``; the result is min-max normalised.
    ``fusion="binary"`` gates with the hard Otsu mask ``V_l > t_l`` (the paper);
    ``fusion="sigmoid"`` with ``sigmoid(temperature * (V_l - t_l))`` where ``t_l`` follows the
    authors' code: the Otsu level ``t`` of a 256-bin histogram of ``round(256 V)``, raised to
    ``1.5 t`` when fewer than 10% of the pixels lie at or above level ``round(1.5 t)``.

    Example:
        >>> maps = torch.zeros(1, 2, 4, 4)
        >>> maps[0, :, :2, :2] = 1.0
        >>> cascade_fusion(maps, "binary")[0, 0, :, 0].tolist()
        [1.0, 1.0, 0.0, 0.0]
    """
    fused = maps[:, 0]
    for level in range(1, maps.shape[1]):
        layer_map = maps[:, level]
        fused = (fused + layer_map) * _fusion_gate(layer_map, fusion, temperature)
    return minmax_normalize(fused.unsqueeze(1))


def _fusion_gate(layer_map: Tensor, fusion: str, temperature: float) -> Tensor:
    """The gate of one layer's maps ``[B, H, W]``: hard Otsu mask or the code's soft version."""
    flat = layer_map.flatten(1)
    if fusion == "binary":
        threshold = rows_otsu_threshold(flat, OTSU_BINS, (0.0, 1.0), None)
        return (layer_map > threshold[:, None, None]).to(layer_map.dtype)
    threshold = _code_otsu_threshold(flat).to(layer_map.dtype)
    return torch.sigmoid(temperature * (layer_map - threshold[:, None, None]))


def _code_otsu_threshold(flat: Tensor, tau: float = 1.5) -> Tensor:
    """Otsu threshold of maps ``[N, n]`` in [0, 1] as the SISE authors' ``otsu()`` computes it."""
    counts = bin_counts(torch.round(flat * OTSU_BINS).clamp(0, OTSU_BINS - 1).long(), OTSU_BINS)
    level = otsu_split(counts).to(torch.float64)
    raised = torch.round(level * tau)
    levels = torch.arange(OTSU_BINS, dtype=torch.float64, device=flat.device)
    upper = (counts * (levels >= raised[:, None])).sum(dim=1)
    use_raised = upper < 0.1 * counts.sum(dim=1)
    return torch.where(use_raised, level * tau, level) / OTSU_BINS


class SISE(Explainer):
    """Semantic Input Sampling for Explanation (Sattarzadeh et al., AAAI 2021).

    Images are float in [0, 1] (the model normalises inside); masking multiplies them by masks
    in [0, 1], so the implicit baseline is black. The maps are not differentiable (the masked
    images are scored without a graph): ``create_graph=True`` raises ``ValueError``.

    The model runs in its current mode. Put it in eval mode: in train mode BatchNorm mixes the
    images of a chunk and the maps depend on the batch. Each call records the masks it scored in
    ``last_num_masks`` (LongTensor ``[B, L]``) and the layers in ``last_layers``.

    Args:
        layers: modules or dotted names, low to high; None chooses the last layer of every block
            with ``block_output_layers`` (on the first call for each input size).
        mu: keep channel k when ``alpha_k > mu * max_j alpha_j`` and ``alpha_k > 0``, where
            ``alpha_k`` is the spatially averaged gradient; 0 (the paper's default) keeps all
            positive-gradient channels. Channels with a constant map are always skipped.
        fusion: ``"sigmoid"`` (the authors' code, default) or ``"binary"`` (the paper's hard
            Otsu mask); see ``cascade_fusion``.
        internal_batch_size: masked images per forward pass (bounds memory).
        temperature: steepness ``T`` of the sigmoid gate.
        score: ``"probability"`` (softmax of the logits, as the reference Keras model outputs) or
            ``"logit"``; used for the gradients and for scoring masked images.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4).eval()
        >>> sise = SISE(model, internal_batch_size=64)
        >>> maps = sise(torch.rand(2, 3, 16, 16), target=0)
        >>> maps.shape, bool(maps.min() >= 0), sise.last_layers
        (torch.Size([2, 1, 16, 16]), True, ['block1', 'block2', 'block3'])
    """

    differentiable = False

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[LayerSpec] | LayerSpec | None = None,
        *,
        mu: float = 0.0,
        fusion: str = "sigmoid",
        internal_batch_size: int = 256,
        temperature: float = 100.0,
        score: str = "probability",
        reshape: Reshape = "auto",
        check_values: bool = True,
    ) -> None:
        super().__init__(model, check_values=check_values)
        self.reshape = check_reshape(reshape)
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not 0 <= mu < 1:
            raise ValueError(f"mu must be a number in [0, 1), got {mu!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        check_count(internal_batch_size, "internal_batch_size")
        check_positive(temperature, "temperature")
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        if layers is not None and len(layers) == 0:
            raise ValueError("layers must name at least one layer, got an empty sequence")
        self.layers = (
            None if layers is None else [resolve_layer(model, layer)[0] for layer in layers]
        )
        self.mu = float(mu)
        self.fusion = fusion
        self.internal_batch_size = internal_batch_size
        self.temperature = float(temperature)
        self.score = score
        self.last_num_masks: Tensor | None = None
        self.last_layers: list[str] | None = None
        self._auto_layers: dict[tuple[int, ...], list[str]] = {}

    def layer_names(self, x: Tensor) -> list[str]:
        """The layers explained for inputs shaped like ``x`` (given, or chosen automatically)."""
        if self.layers is not None:
            return self.layers
        key = tuple(x.shape[1:])
        if key not in self._auto_layers:
            self._auto_layers[key] = block_output_layers(self.model, x[:1])
        return self._auto_layers[key]

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        names = self.layer_names(x)
        activations, alphas, target = self._gradients(x, target, names)
        keep = [
            selected & _varying(activation)
            for selected, activation in zip(
                self._select_channels(alphas), activations, strict=False
            )
        ]
        layer_maps = torch.stack(
            [
                self._layer_map(x, target, activation, selected)
                for activation, selected in zip(activations, keep, strict=False)
            ],
            dim=1,
        )
        self.last_num_masks = torch.stack([selected.sum(dim=1) for selected in keep], dim=1)
        self.last_layers = list(names)
        return cascade_fusion(layer_maps, self.fusion, self.temperature)

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        return raw

    def _outputs(self, logits: Tensor) -> Tensor:
        return logits.softmax(dim=1) if self.score == "probability" else logits

    def _gradients(
        self, x: Tensor, target: Tensor | None, names: list[str]
    ) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """Phase 1: feature maps, channel-mean gradients ``[B, K_l]`` and the resolved target."""
        modules = [resolve_layer(self.model, name)[1] for name in names]
        inputs = x.detach().requires_grad_(True)
        with captured_outputs(modules) as outputs:
            logits = self.model(inputs)
            scores, target = self._checked_scores(self._outputs(logits), target)
        maps = [
            as_feature_maps(output, self.reshape, self.model, name)
            for name, output in zip(names, outputs, strict=True)
        ]
        grads = torch.autograd.grad(scores.sum(), outputs, allow_unused=True)
        alphas = [
            torch.zeros(activation.shape[:2], dtype=activation.dtype, device=activation.device)
            if grad is None
            else as_feature_maps(grad, self.reshape, self.model, name).mean(dim=(2, 3))
            for name, activation, grad in zip(names, maps, grads, strict=True)
        ]
        return [activation.detach() for activation in maps], alphas, target

    def _select_channels(self, alphas: list[Tensor]) -> list[Tensor]:
        """Phase 2: bool ``[B, K_l]`` per layer, ``alpha > mu * max alpha`` and ``alpha > 0``."""
        return [
            (alpha > self.mu * alpha.amax(dim=1, keepdim=True)) & (alpha > 0) for alpha in alphas
        ]

    def _layer_map(self, x: Tensor, target: Tensor, activation: Tensor, keep: Tensor) -> Tensor:
        """Phase 3: ``minmax(sum_k s(x * m_k) m_k / sum(m_k))`` per image, ``[B, H, W]``."""
        size = (x.shape[2], x.shape[3])
        layer_map = x.new_zeros(x.shape[0], *size)
        image_index, channel_index = keep.nonzero().unbind(dim=1)
        with torch.no_grad():
            for start in range(0, image_index.shape[0], self.internal_batch_size):
                images = image_index[start : start + self.internal_batch_size]
                channels = channel_index[start : start + self.internal_batch_size]
                masks = minmax_normalize(upsample(activation[images, channels].unsqueeze(1), size))
                masks = masks.to(x.dtype)
                logits = self.model(x[images] * masks)
                scores, _ = class_scores(self._outputs(logits), target[images])
                area = masks.sum(dim=(1, 2, 3)).clamp_min(torch.finfo(x.dtype).tiny)
                layer_map.index_add_(0, images, masks[:, 0] * (scores / area)[:, None, None])
        return minmax_normalize(layer_map.unsqueeze(1)).squeeze(1)


class AdaSISE(SISE):
    """Ada-SISE (Sattarzadeh et al., ICASSP 2021): SISE with adaptive channel selection.

    Per image and layer, the positive mean gradients are normalised by their maximum,
    ``alpha_hat = alpha / max_j alpha_j``, and channel k is kept when ``alpha_hat_k`` exceeds the
    Otsu threshold of the histogram of the positive ``alpha_hat`` (256 bins on [0, 1]). This keeps
    a subset of the channels SISE keeps with ``mu = 0`` (the strongest always stays), so it
    scores fewer masks. All other phases, arguments (but ``mu``) and conventions are SISE's.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4).eval()
        >>> x = torch.rand(2, 3, 16, 16)
        >>> ada, sise = AdaSISE(model), SISE(model)
        >>> _, _ = ada(x, target=1), sise(x, target=1)
        >>> bool((ada.last_num_masks <= sise.last_num_masks).all())
        True
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[LayerSpec] | LayerSpec | None = None,
        **options: Any,
    ) -> None:
        super().__init__(model, layers, mu=0.0, **options)

    def _select_channels(self, alphas: list[Tensor]) -> list[Tensor]:
        """Otsu on the normalised positive gradients, all images and layers in one batch."""
        widest = max(alpha.shape[1] for alpha in alphas)
        padded = alphas[0].new_zeros(len(alphas), alphas[0].shape[0], widest)
        for level, alpha in enumerate(alphas):
            padded[level, :, : alpha.shape[1]] = alpha
        positive = padded > 0
        peak = padded.amax(dim=2, keepdim=True).clamp_min(torch.finfo(padded.dtype).tiny)
        normalised = padded / peak
        threshold = rows_otsu_threshold(
            normalised.flatten(0, 1), OTSU_BINS, (0.0, 1.0), positive.flatten(0, 1)
        ).view(len(alphas), -1, 1)
        keep = positive & (normalised > threshold)
        return [keep[level, :, : alpha.shape[1]] for level, alpha in enumerate(alphas)]


def _varying(activation: Tensor) -> Tensor:
    """Bool ``[B, K]``: the channel's map is not constant (a constant map gives no mask)."""
    flat = activation.flatten(2)
    return flat.amax(dim=2) > flat.amin(dim=2)
