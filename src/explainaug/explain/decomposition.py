"""Contextual decomposition (CD) of a model's logits into a region's part and the rest.

CD (Murdoch et al. 2018; Singh et al. 2019, the code CDEP builds on) splits the input into a
*relevant* part ``mask * x`` and an *irrelevant* part ``(1 - mask) * x`` and carries both through
the network so that ``rel + irrel`` equals the logits. The rules are those of CDEP's official
``src/cd.py`` (Rieger et al. 2020):

- Conv/Linear: each stream through the weights without bias; the bias is shared in proportion
  ``|z_rel| / (|z_rel| + |z_irrel|)`` and the rest.
- ReLU and other elementwise activations ``f``: ``rel' = f(rel)``,
  ``irrel' = f(rel + irrel) - f(rel)``.
- Max-pooling: both streams are taken at the arg-max positions of ``rel + irrel``.
- Dropout: the identity (the official ``cd()`` runs the model in eval mode).

Beyond the official code (which skips these layers silently and is then wrong):

- BatchNorm as the affine map of its running statistics (eval mode), folded into the conv or
  linear layer right before it (as ``torch.nn.utils.fusion`` does), otherwise an affine map of
  its own whose shift is shared like a bias.
- Average and adaptive average pooling, flattening and reshaping: linear, applied to each stream.
- Residual additions: the streams add; adding or subtracting a constant (the input
  normalisation ``(x - mean) / std``) shares it like a bias, multiplying or dividing by one
  scales both streams.
- Where both streams of a unit are exactly 0 the official code drops the bias (its 1e-19
  stabiliser makes both shares 0); here it goes to ``irrel``, so ``rel + irrel`` is the logits
  exactly. Elementwise constants applied to the input split (the normalisation) are shared by
  the mask itself, so ``rel`` is ``mask * normalize(x)`` as in the official code, whose data are
  normalised before the split (also where a pixel is 0).

The decomposition reads the live weights and running statistics on every call (it is
differentiable in the weights, for CDEP's penalty) and never changes the model's train/eval
mode or its BatchNorm statistics.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from explainaug._validation import check_images, check_tensor

_AFFINE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
)
_MAX_POOLS = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
_LINEAR_MODULES = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Flatten,
    nn.Unflatten,
)
_IDENTITIES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_ACTIVATION_FUNCTIONS = {
    F.relu,
    torch.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.softplus,
    torch.sigmoid,
    torch.tanh,
    F.sigmoid,
    F.tanh,
}
_ACTIVATION_METHODS = {"relu", "sigmoid", "tanh"}
_MAX_POOL_FUNCTIONS = {
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
}
_LINEAR_FUNCTIONS = {
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.permute,
    torch.transpose,
    torch.mean,
    torch.sum,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    operator.getitem,
}
_LINEAR_METHODS = {
    "view",
    "reshape",
    "flatten",
    "contiguous",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "mean",
    "sum",
}
_SHAPE_METHODS = {"size", "dim"}
_DROPOUT_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout}

SUPPORTED = (
    "Conv1d/2d/3d, Linear, BatchNorm1d/2d/3d (running statistics), elementwise activations "
    "(ReLU, LeakyReLU, GELU, SiLU, Sigmoid, Tanh, ...), max/avg/adaptive pooling, Flatten, "
    "Dropout (identity), residual additions, cat, reshaping, and adding/subtracting/scaling by "
    "constants"
)


@dataclass
class _Pair:
    """The two streams of one value; ``share`` is rel's fraction of each element while every
    operation since the input split was elementwise and affine (None afterwards)."""

    rel: Tensor
    irrel: Tensor
    share: Tensor | None = None


class ContextualDecomposition:
    """Decompose ``model(x)`` into the contribution of ``mask * x`` and the rest.

    The model is traced once with ``torch.fx``; a layer or operation on the input's path
    without a CD rule raises ``TypeError`` naming it. Calls read the live weights and the
    BatchNorm running statistics, so ``rel + irrel`` is the model's eval-mode logits (BatchNorm
    folded) whatever mode the model is in; the model's mode and statistics are never changed.

    Args:
        model: a classifier whose forward takes one image batch and returns logits.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4).eval()
        >>> cd = ContextualDecomposition(model)
        >>> x, mask = torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)
        >>> mask[:, :, :4, :4] = 1
        >>> rel, irrel = cd(x, mask)
        >>> torch.allclose(rel + irrel, model(x), atol=1e-5)
        True
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        try:
            self.graph = fx.Tracer().trace(model)
        except Exception as error:  # fx raises many kinds; report the first line
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise TypeError(
                f"ContextualDecomposition needs a model torch.fx can trace; tracing "
                f"{type(model).__name__} failed: {type(error).__name__}: {message}"
            ) from None
        self._steps = self._plan()

    def _plan(self) -> list[tuple[fx.Node, Callable[..., Any] | None]]:
        """Each node with its CD rule (None: run as is, it does not depend on the input)."""
        nodes = list(self.graph.nodes)
        inputs = [node for node in nodes if node.op == "placeholder"]
        if not inputs:
            raise TypeError(f"{type(self.model).__name__}.forward takes no input")
        dependent = {inputs[0]}  # nodes whose value holds the two streams (or reads their shape)
        carrying = {inputs[0]}  # nodes whose value holds the two streams
        for node in nodes:
            if node.op != "output" and any(arg in carrying for arg in node.all_input_nodes):
                dependent.add(node)
                if not _reads_shape(node):
                    carrying.add(node)
        self._carrying = carrying
        folded: dict[fx.Node, nn.Module] = {}
        for node in nodes:
            if node in dependent and node.op == "call_module":
                module = self.model.get_submodule(str(node.target))
                users = list(node.users)
                if isinstance(module, _AFFINE) and len(users) == 1:
                    user = users[0]
                    if (
                        user.op == "call_module"
                        and user.args[:1] == (node,)
                        and isinstance(self.model.get_submodule(str(user.target)), _BATCHNORM)
                    ):
                        folded[node] = self.model.get_submodule(str(user.target))
        folded_into = {user for node in folded for user in node.users}
        steps: list[tuple[fx.Node, Callable[..., Any] | None]] = []
        for node in nodes:
            if node.op == "placeholder" and node is not inputs[0] and not node.args:
                raise TypeError(
                    f"ContextualDecomposition needs a forward with one input; "
                    f"{type(self.model).__name__}.forward also takes {node.target!r}"
                )
            if node in dependent:
                steps.append((node, self._rule(node, folded.get(node), node in folded_into)))
            else:
                steps.append((node, None))
        return steps

    def _rule(self, node: fx.Node, batchnorm: nn.Module | None, folded: bool) -> Callable[..., Any]:
        """The CD rule of one node on the input's path; ``TypeError`` naming it if none."""
        if node.op == "placeholder":
            return _Pair  # the input: ``__call__`` splits it
        if node.op == "call_module":
            module = self.model.get_submodule(str(node.target))
            if isinstance(module, _AFFINE):
                return lambda pair: _affine(pair, module, batchnorm)
            if isinstance(module, _BATCHNORM):
                if module.running_mean is None or module.running_var is None:
                    raise TypeError(
                        f"ContextualDecomposition needs BatchNorm running statistics; layer "
                        f"'{node.target}' ({type(module).__name__}) has none "
                        f"(track_running_stats=False)"
                    )
                return (lambda pair: pair) if folded else (lambda pair: _batchnorm(pair, module))
            if isinstance(module, _ACTIVATIONS):
                function = _out_of_place(module)
                return lambda pair: _activation(pair, function)
            if isinstance(module, _MAX_POOLS):
                pool = copy.copy(module)
                pool.return_indices = True
                return lambda pair: _max_pool(pair, pool)
            if isinstance(module, _LINEAR_MODULES):
                return lambda pair: _Pair(module(pair.rel), module(pair.irrel))
            if isinstance(module, _IDENTITIES):
                return lambda pair: pair
            raise TypeError(
                f"ContextualDecomposition cannot decompose layer '{node.target}' "
                f"({type(module).__name__}); supported: {SUPPORTED}"
            )
        target = node.target
        if node.op == "call_function":
            if target in (operator.add, operator.iadd, torch.add):
                return _add
            if target in (operator.sub, operator.isub, torch.sub):
                return _subtract
            carried = [arg in self._carrying for arg in (*node.args, None, None)[:2]]
            if target in (operator.mul, operator.imul, torch.mul) and not all(carried):
                return _multiply
            if target in (operator.truediv, operator.itruediv, torch.div) and not carried[1]:
                return _divide
            if target in _ACTIVATION_FUNCTIONS:
                return lambda pair, *args, **kwargs: _activation(
                    pair, lambda value: target(value, *args, **_no_inplace(kwargs))
                )
            if target in _MAX_POOL_FUNCTIONS:
                return lambda pair, *args, **kwargs: _max_pool(
                    pair, lambda value: target(value, *args, **{**kwargs, "return_indices": True})
                )
            if target in _LINEAR_FUNCTIONS:
                return lambda pair, *args, **kwargs: _per_stream(pair, target, args, kwargs)
            if target in _DROPOUT_FUNCTIONS:
                return lambda pair, *args, **kwargs: pair
            if target is torch.cat:
                return _cat
            if target is getattr:
                return lambda pair, name: getattr(pair.rel, name)  # shape, dtype, device
        if node.op == "call_method":
            name = str(target)
            if name in _LINEAR_METHODS:
                return lambda pair, *args, **kwargs: _per_stream(
                    pair, lambda value, *a, **k: getattr(value, name)(*a, **k), args, kwargs
                )
            if name in _ACTIVATION_METHODS:
                return lambda pair: _activation(pair, lambda value: getattr(value, name)())
            if name in _SHAPE_METHODS:
                return lambda pair, *args: getattr(pair.rel, name)(*args)
        label = getattr(target, "__name__", str(target))
        kind = "Tensor." if node.op == "call_method" else ""
        raise TypeError(
            f"ContextualDecomposition cannot decompose operation '{node.name}' ({kind}{label}); "
            f"supported: {SUPPORTED}"
        )

    def __call__(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(rel, irrel)``, each shaped like the logits, with ``rel + irrel`` the
        model's eval-mode logits.

        Args:
            x: images ``[B, C, H, W]`` as the model takes them (in [0, 1] for the package's
                models, which normalise inside).
            mask: the relevant region, broadcastable to ``x`` (``[B or 1, 1 or C, H, W]``),
                float in [0, 1] or bool; 1 marks the relevant (penalised) part.
        """
        check_images(x, finite=False)
        mask = check_tensor(mask, "mask")
        if (
            mask.ndim != 4
            or any(size not in (1, full) for size, full in zip(mask.shape, x.shape, strict=True))
            or mask.shape[2:] != x.shape[2:]
        ):
            raise ValueError(
                f"mask must have shape [B or 1, 1 or C, H, W] = [{x.shape[0]} or 1, 1 or "
                f"{x.shape[1]}, {x.shape[2]}, {x.shape[3]}] to match x, got {tuple(mask.shape)}"
            )
        share = mask.to(x.dtype).expand_as(x)
        values: dict[fx.Node, Any] = {}
        for node, rule in self._steps:
            args = fx.node.map_arg(node.args, values.__getitem__)
            kwargs = fx.node.map_arg(node.kwargs, values.__getitem__)
            if node.op == "placeholder":
                values[node] = (
                    _Pair(share * x, (1 - share) * x, share) if rule is not None else args[0]
                )
            elif node.op == "output":
                result = args[0]
                if not isinstance(result, _Pair):
                    raise TypeError(
                        f"ContextualDecomposition needs a model returning one logits tensor "
                        f"computed from its input; {type(self.model).__name__} returns "
                        f"{type(result).__name__}"
                    )
                return result.rel, result.irrel
            elif rule is not None:
                values[node] = rule(*args, **kwargs)
            elif node.op == "get_attr":
                values[node] = _attribute(self.model, str(node.target))
            elif node.op == "call_module":
                values[node] = self.model.get_submodule(str(node.target))(*args, **kwargs)
            elif node.op == "call_function":
                values[node] = node.target(*args, **kwargs)  # type: ignore[operator]
            else:
                values[node] = getattr(args[0], str(node.target))(*args[1:], **kwargs)
        raise AssertionError("a traced graph ends with its output")

    def __repr__(self) -> str:
        return f"ContextualDecomposition({type(self.model).__name__})"


def _reads_shape(node: fx.Node) -> bool:
    """Whether ``node`` reads only the shape (or dtype, device) of its input."""
    return (node.op == "call_function" and node.target is getattr) or (
        node.op == "call_method" and node.target in _SHAPE_METHODS
    )


def _attribute(model: nn.Module, dotted: str) -> Any:
    owner, _, name = dotted.rpartition(".")
    return getattr(model.get_submodule(owner) if owner else model, name)


def _split_bias(rel: Tensor, irrel: Tensor, bias: Tensor | float, share: Tensor | None) -> _Pair:
    """Add ``bias`` to the two streams, ``share`` of it (default ``|rel| / (|rel| + |irrel|)``,
    0 where both are 0) to ``rel`` and the rest to ``irrel``."""
    if share is None:
        magnitude = rel.abs()
        total = magnitude + irrel.abs()
        share = magnitude / torch.where(total > 0, total, torch.ones_like(total))
    return _Pair(rel + share * bias, irrel + (1 - share) * bias)


def _affine(pair: _Pair, module: nn.Module, batchnorm: nn.Module | None) -> _Pair:
    weight: Tensor = module.weight
    bias: Tensor | None = module.bias
    if batchnorm is not None:
        scale, shift = _batchnorm_affine(batchnorm)
        weight = weight * scale.view(-1, *([1] * (weight.ndim - 1)))
        bias = shift if bias is None else bias * scale + shift
    both = torch.cat([pair.rel, pair.irrel])
    if isinstance(module, nn.Linear):
        out = F.linear(both, weight)
    else:
        out = module._conv_forward(both, weight, None)  # type: ignore[operator]
    rel, irrel = out.chunk(2)
    if bias is None:
        return _Pair(rel, irrel)
    shape = (-1,) if isinstance(module, nn.Linear) else (-1, *([1] * (out.ndim - 2)))
    return _split_bias(rel, irrel, bias.view(shape), None)


def _batchnorm_affine(module: nn.Module) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` with ``module(x) == scale * x + shift`` per channel in eval mode."""
    scale = torch.rsqrt(module.running_var + module.eps)
    if module.weight is not None:
        scale = module.weight * scale
    shift = -module.running_mean * scale
    if module.bias is not None:
        shift = shift + module.bias
    return scale, shift


def _batchnorm(pair: _Pair, module: nn.Module) -> _Pair:
    scale, shift = _batchnorm_affine(module)
    shape = (-1, *([1] * (pair.rel.ndim - 2)))
    scale, shift = scale.view(shape), shift.view(shape)
    return _split_bias(pair.rel * scale, pair.irrel * scale, shift, None)


def _out_of_place(module: nn.Module) -> nn.Module:
    if getattr(module, "inplace", False):
        module = copy.copy(module)
        module.inplace = False
    return module


def _no_inplace(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "inplace": False} if "inplace" in kwargs else kwargs


def _activation(pair: _Pair, function: Callable[[Tensor], Tensor]) -> _Pair:
    out = function(torch.cat([pair.rel, pair.rel + pair.irrel]))
    rel, both = out.chunk(2)
    return _Pair(rel, both - rel)


def _max_pool(pair: _Pair, pool: Callable[[Tensor], tuple[Tensor, Tensor]]) -> _Pair:
    out, indices = pool(pair.rel + pair.irrel)
    flat = indices.flatten(2)

    def take(value: Tensor) -> Tensor:
        return value.flatten(2).gather(2, flat).view_as(out)

    return _Pair(take(pair.rel), take(pair.irrel))


def _per_stream(
    pair: _Pair, function: Callable[..., Tensor], args: tuple, kwargs: dict[str, Any]
) -> _Pair:
    return _Pair(function(pair.rel, *args, **kwargs), function(pair.irrel, *args, **kwargs))


def _cat(values: Any, *args: Any, **kwargs: Any) -> _Pair:
    if not all(isinstance(value, _Pair) for value in values):
        raise TypeError("ContextualDecomposition cannot concatenate the input with constants")
    return _Pair(
        torch.cat([value.rel for value in values], *args, **kwargs),
        torch.cat([value.irrel for value in values], *args, **kwargs),
    )


def _add(a: Any, b: Any, *, alpha: float = 1) -> _Pair:
    if alpha != 1:
        b = _Pair(alpha * b.rel, alpha * b.irrel, b.share) if isinstance(b, _Pair) else alpha * b
    if isinstance(a, _Pair) and isinstance(b, _Pair):
        return _Pair(a.rel + b.rel, a.irrel + b.irrel)
    pair, constant = (a, b) if isinstance(a, _Pair) else (b, a)
    out = _split_bias(pair.rel, pair.irrel, constant, pair.share)
    out.share = pair.share
    return out


def _subtract(a: Any, b: Any, *, alpha: float = 1) -> _Pair:
    if isinstance(b, _Pair):
        b = _Pair(-b.rel, -b.irrel, b.share)
    else:
        b = -b
    return _add(a, b, alpha=alpha)


def _multiply(a: Any, b: Any) -> _Pair:
    pair, constant = (a, b) if isinstance(a, _Pair) else (b, a)
    return _Pair(pair.rel * constant, pair.irrel * constant, pair.share)


def _divide(a: _Pair, b: Any) -> _Pair:
    return _Pair(a.rel / b, a.irrel / b, a.share)
