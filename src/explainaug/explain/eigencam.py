"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): the layer's first principal component.

Per image, the activations ``A [K, h, w]`` are read as ``h*w`` points in ``R^K``, centred per
channel (``X = A - mean_hw A``) and projected on the first right singular vector ``v1`` of ``X``:
``p = X v1``. The map needs no gradient and no class; it is the same for every target.
"""

from __future__ import annotations

import torch
from torch import Tensor

from explainaug.explain.cam import CAM


class _FirstComponentProjection(torch.autograd.Function):
    """``X [N, n, K] -> X v1 [N, n]`` with ``v1`` the first right singular vector of ``X``.

    The backward uses only the first singular pair's spectral gap: ``dv1 = (s1^2 I - X^T X)^+
    dM v1`` with ``M = X^T X``, so repeated trailing singular values (dead channels give many
    exact zeros) do not turn the gradient into NaN, as ``torch.linalg.svd``'s backward does.
    The gradient is undefined when ``s1 = s2``; there it drops the tied directions.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, points: Tensor) -> Tensor:
        _, singular, right = torch.linalg.svd(points, full_matrices=False)
        first = right[:, 0]
        projection = (points @ first.unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(points, singular, right, projection)
        return projection

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        points, singular, right, projection = ctx.saved_tensors
        first = right[:, 0]  # [N, K]
        eigen = singular.square()  # eigenvalues of M, [N, r]
        gap = eigen[:, :1] - eigen  # [N, r]; 0 for the first pair
        # d/dv1 of <grad, X v1> is X^T grad; map it through (s1^2 I - M)^+ on span(V) and on
        # the null space of M (eigenvalue 0, gap s1^2), never on v1 itself.
        pulled = (points.transpose(1, 2) @ grad.unsqueeze(-1)).squeeze(-1)  # [N, K]
        coefficients = (right @ pulled.unsqueeze(-1)).squeeze(-1)  # [N, r]
        inverse_gap = torch.where(gap > 0, 1 / gap.clamp_min(torch.finfo(gap.dtype).tiny), 0)
        in_span = (right.transpose(1, 2) @ (coefficients * inverse_gap).unsqueeze(-1)).squeeze(-1)
        null_part = pulled - (right.transpose(1, 2) @ coefficients.unsqueeze(-1)).squeeze(-1)
        top = eigen[:, :1]
        solved = in_span + torch.where(top > 0, null_part / top.clamp_min(1e-30), 0)
        # L = <grad, X v1>: dL/dX = grad v1^T + X v1 z^T + X z v1^T with z the solved vector.
        spread = (points @ solved.unsqueeze(-1)).squeeze(-1)
        return (
            grad.unsqueeze(-1) * first.unsqueeze(1)
            + projection.unsqueeze(-1) * solved.unsqueeze(1)
            + spread.unsqueeze(-1) * first.unsqueeze(1)
        )


def first_component_projection(activations: Tensor) -> Tensor:
    """Projection of the centred activations ``[N, K, h, w]`` on their first principal component.

    Returns ``[N, 1, h, w]``; the sign is the SVD's (arbitrary), as in pytorch-grad-cam's
    ``get_2d_projection``. Differentiable (see ``_FirstComponentProjection``).

    Example:
        >>> acts = torch.zeros(1, 2, 1, 3)
        >>> acts[0, 0, 0] = torch.tensor([0.0, 1.0, 2.0])
        >>> first_component_projection(acts).abs().flatten().tolist()
        [1.0, 0.0, 1.0]
    """
    points = activations.flatten(2).transpose(1, 2)  # [N, h*w, K]
    if points.dtype not in (torch.float32, torch.float64):
        points = points.float()  # no SVD in half precision; the result is cast back
    centred = points - points.mean(dim=1, keepdim=True)
    projection = _FirstComponentProjection.apply(centred).to(activations.dtype)
    return projection.view(activations.shape[0], 1, *activations.shape[2:])


class EigenCAM(CAM):
    """Eigen-CAM at one layer, batched (one batched SVD of ``[B, h*w, K]``).

    ``attribute`` returns the projection ``[B, 1, h, w]`` of the centred activations on their
    first principal component, equal to pytorch-grad-cam's ``get_2d_projection`` up to sign.
    ``__call__`` fixes the sign by the rule of Seg-Eigen-CAM (Chung & Ying 2025, eq. 13; also
    pytorch-grad-cam's ``get_2d_projection_with_sign_correction``): the map is negated when its
    most negative value is larger in magnitude than its largest value, so the dominant extreme
    is positive; then ReLU and bilinear upsampling to the input. The target only picks nothing:
    Eigen-CAM is class-agnostic (a given target is still range-checked). Differentiable with
    ``create_graph=True`` unless the first two singular values tie.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> maps = EigenCAM(SmallCNN(num_classes=3, width=4).eval())(torch.rand(2, 3, 16, 16))
        >>> maps.shape, bool(maps.min() >= 0)
        (torch.Size([2, 1, 16, 16]), True)
    """

    needs_gradients = False  # forward passes only

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        logits, activations = self._forward(x)
        self._checked_scores(logits, target)
        return first_component_projection(activations)

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        flat = raw.flatten(1)
        flip = flat.amin(dim=1).abs() > flat.amax(dim=1).abs()
        signed = torch.where(flip[:, None, None, None], -raw, raw)
        return super()._to_maps(signed, x)
