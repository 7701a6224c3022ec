"""Any classifier (torchvision, timm, your own) as an explainaug model, keeping its layer names.

``adapt`` adds the package's conventions to a network in place: an input ``Normalize`` (images
come in [0, 1]), a tensor output (``output=`` picks the logits of a model that returns a tuple or
dict), and ``num_features``. Its modules keep their names, so ``GradCAM(model, layer="layer4")``
names a torchvision ResNet's layer as torchvision does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from explainaug.models.normalize import Normalize

Output = int | str | None


class ModelOutputError(TypeError):
    """A model's output is not a logits tensor and ``output=`` does not select one."""


def _normalize_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (module.normalize(args[0]), *args[1:])


def _select_output(module: nn.Module, args: tuple[Any, ...], output: Any) -> Tensor:
    if isinstance(output, Tensor):  # the logits (GoogLeNet in eval mode): nothing to select
        return output
    key = module.output_key
    if key is None:
        kind = type(output).__name__
        hint = f"keys {list(output)}" if isinstance(output, dict) else f"{len(output)} items"
        raise ModelOutputError(
            f"{type(module).__name__} returns a {kind} ({hint}), expected a logits tensor; "
            f"pass output= (an index or key; --model-output on the command line) to select it"
        )
    try:
        selected = output[key]
    except (KeyError, IndexError, TypeError):
        raise ModelOutputError(
            f"output={key!r} does not select from the {type(output).__name__} that "
            f"{type(module).__name__} returns"
        ) from None
    if not isinstance(selected, Tensor):
        raise ModelOutputError(
            f"output={key!r} selects a {type(selected).__name__}, expected a tensor"
        )
    return selected


def last_linear(model: nn.Module) -> str:
    """Dotted name of the classification head: timm's ``get_classifier()`` where present, else
    the last ``nn.Linear`` in registration order (torchvision's ``fc``, ``classifier.1``, ...).

    Example:
        >>> import torchvision
        >>> last_linear(torchvision.models.resnet18())
        'fc'
    """
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        head = get_classifier()
        for name, module in model.named_modules():
            if module is head and isinstance(module, nn.Linear):
                return name
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classification head")
    return names[-1]


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at dotted ``name`` inside ``model``; return the module it replaces.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Linear(4, 2))
        >>> replace_module(net, "1", nn.Identity())
        Linear(in_features=4, out_features=2, bias=True)
    """
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old


def adapt(
    net: nn.Module,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    output: Output = None,
    num_features: int | None = None,
) -> nn.Module:
    """Give ``net`` the package's conventions, in place, and return it.

    - ``net.normalize``: a :class:`Normalize` applied to the input by a forward pre-hook
      (identity without ``mean``/``std``), so ``net`` takes images in [0, 1].
    - A tensor output: ``output`` (an index or a key) selects the logits of a network that
      returns a tuple or a dict; without it, such a network raises a ``TypeError`` that says
      what to pass instead of failing later in a loss.
    - ``net.num_features``: the head's input size (``num_features``, else the size of the
      input of its last ``nn.Linear``), which ``ContrastiveModel`` needs.

    Module names are kept (the hooks add no nesting).

    Example:
        >>> import torchvision
        >>> net = adapt(torchvision.models.resnet18(num_classes=3), mean=(0.5,) * 3, std=(0.2,) * 3)
        >>> net(torch.rand(2, 3, 32, 32)).shape, net.num_features
        (torch.Size([2, 3]), 512)
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    if getattr(net, "_explainaug_adapted", False):
        raise ValueError(f"{type(net).__name__} is already adapted")
    if "normalize" in dict(net.named_children()) or hasattr(net, "output_key"):
        raise ValueError(
            f"{type(net).__name__} already has a 'normalize' or 'output_key' attribute"
        )
    net.normalize = Normalize(mean, std)
    net.output_key = output
    if num_features is None:
        head = net.get_submodule(last_linear(net))
        num_features = head.in_features
    net.num_features = num_features
    net.register_forward_pre_hook(_normalize_input)
    net.register_forward_hook(_select_output)
    net._explainaug_adapted = True
    return net
