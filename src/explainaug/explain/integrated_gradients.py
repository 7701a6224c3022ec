"""Integrated Gradients (Sundararajan et al., 2017), batched over images and steps.

Images are float ``[B, C, H, W]`` in [0, 1]; models normalise inside, so the default zero
baseline is a black image. Quadrature nodes and weights follow Captum's conventions exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from explainaug._shared import image_step_chunks, preserved_model_state
from explainaug._validation import check_count, check_images
from explainaug.explain._base import Explainer, Target, check_target
from explainaug.explain.gradient import target_gradients

METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def quadrature(method: str, n_steps: int) -> tuple[Tensor, Tensor]:
    """Path positions ``alphas`` in [0, 1] and their weights, both float64 ``[n_steps]``.

    Riemann rules use equal weights ``1/n`` (halved at both ends for ``riemann_trapezoid``,
    whose nodes include 0 and 1); Gauss-Legendre maps the Legendre nodes from [-1, 1] to [0, 1].
    These are Captum's conventions, so attributions agree with ``captum.attr``.

    Example:
        >>> quadrature("riemann_right", 4)[0].tolist()
        [0.25, 0.5, 0.75, 1.0]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    minimum = 1 if method == "gausslegendre" else 2
    check_count(n_steps, f"n_steps for {method}", minimum=minimum)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return torch.from_numpy(0.5 * (nodes + 1)), torch.from_numpy(0.5 * weights)
    n = n_steps
    start, end = {
        "riemann_left": (0.0, 1 - 1 / n),
        "riemann_right": (1 / n, 1.0),
        "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
        "riemann_trapezoid": (0.0, 1.0),
    }[method]
    alphas = torch.linspace(start, end, n, dtype=torch.float64)
    weights = torch.full((n,), 1 / n, dtype=torch.float64)
    if method == "riemann_trapezoid":
        weights[[0, -1]] /= 2
    return alphas, weights


class IntegratedGradients(Explainer):
    """Integrated Gradients: (x - x') times the path integral of the target logit's gradient.

    All images and steps go through the model as one flat batch of ``B * n_steps`` inputs,
    split into chunks of ``internal_batch_size`` inputs to bound memory.

    Args:
        baselines: ``None`` (zeros, a black image), a float, or a tensor broadcastable to the
            images, in the same [0, 1] pixel space.
        n_steps: number of quadrature nodes along the path.
        method: ``"gausslegendre"`` or ``"riemann_left" | "riemann_right" | "riemann_middle" |
            "riemann_trapezoid"``, as in Captum.
        internal_batch_size: model inputs per forward pass; ``None`` runs all at once.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> ig = IntegratedGradients(SmallCNN(num_classes=3, width=4).eval(), n_steps=8)
        >>> ig.attribute(torch.rand(2, 3, 8, 8), target=torch.tensor([0, 2])).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        baselines: Tensor | float | None = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        check_values: bool = True,
    ) -> None:
        super().__init__(model, check_values=check_values)
        self.alphas, self.weights = quadrature(method, n_steps)
        self.baselines = _check_baselines(baselines)
        check_count(internal_batch_size, "internal_batch_size", optional=True)
        self.n_steps = n_steps
        self.method = method
        self.internal_batch_size = internal_batch_size

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        if target is None:
            target = self._predicted(x)
        baselines = self._baselines_like(x)
        delta = x - baselines
        alphas = self.alphas.to(device=x.device, dtype=x.dtype)
        weights = self.weights.to(device=x.device, dtype=x.dtype)
        integral = torch.zeros_like(x)
        chunks = image_step_chunks(x.shape[0], self.n_steps, self.internal_batch_size, x.device)
        for _, image, step in chunks:
            path = baselines[image] + alphas[step, None, None, None] * delta[image]
            grads = target_gradients(self, path, target[image], create_graph)
            integral = integral.index_add(0, image, grads * weights[step, None, None, None])
        return delta * integral

    def convergence_delta(self, x: Tensor, attributions: Tensor, target: Target = None) -> Tensor:
        """Completeness error per image ``[B]``: ``sum(attributions) - (f_t(x) - f_t(baseline))``
        for ``attributions = self.attribute(x, target)``; it shrinks towards 0 as ``n_steps`` grows.

        Example:
            >>> from explainaug.models import SmallCNN
            >>> ig = IntegratedGradients(SmallCNN(num_classes=3, width=4).eval(), n_steps=4)
            >>> x = torch.rand(2, 3, 8, 8)
            >>> ig.convergence_delta(x, ig.attribute(x, 1), 1).shape
            torch.Size([2])
        """
        x = check_images(x, finite=self.check_values)
        if not isinstance(attributions, Tensor) or attributions.shape != x.shape:
            shape = tuple(attributions.shape) if isinstance(attributions, Tensor) else attributions
            raise ValueError(
                f"attributions must have the images' shape {tuple(x.shape)}, got {shape}"
            )
        target_tensor = check_target(target, x.shape[0], x.device)
        with preserved_model_state(self.model), torch.no_grad():
            if target_tensor is None:
                target_tensor = self._predicted(x)
            ends = torch.cat([x, self._baselines_like(x)])
            scores, _ = self._scores(ends, target_tensor.repeat(2))
        gain = scores[: x.shape[0]] - scores[x.shape[0] :]
        return attributions.detach().flatten(1).sum(dim=1) - gain

    def _baselines_like(self, x: Tensor) -> Tensor:
        if self.baselines is None:
            return torch.zeros_like(x)
        baselines = self.baselines.to(device=x.device, dtype=x.dtype)
        try:
            return baselines.expand_as(x)
        except RuntimeError:
            raise ValueError(
                f"baselines of shape {tuple(baselines.shape)} do not broadcast to the images' "
                f"shape {tuple(x.shape)}"
            ) from None

    def __repr__(self) -> str:
        return (
            f"IntegratedGradients({type(self.model).__name__}, n_steps={self.n_steps}, "
            f"method={self.method!r})"
        )


def _check_baselines(baselines: Tensor | float | None) -> Tensor | None:
    if baselines is None:
        return None
    if isinstance(baselines, bool) or not isinstance(baselines, (int, float, Tensor)):
        raise TypeError(
            f"baselines must be None, a float or a tensor, got {type(baselines).__name__}"
        )
    baselines = torch.as_tensor(baselines)
    if not baselines.is_floating_point():
        baselines = baselines.float()
    if baselines.ndim > 4:
        raise ValueError(
            f"baselines must broadcast to [B, C, H, W], got shape {tuple(baselines.shape)}"
        )
    if not bool(torch.isfinite(baselines).all()):
        raise ValueError("baselines contain NaN or infinite values")
    return baselines.detach()
