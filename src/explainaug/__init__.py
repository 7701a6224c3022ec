"""explainaug: explanation-aware training of image classifiers in PyTorch.

The subpackages load on first use (``xa.explain``, ``xa.train``, ...), so the command line starts
without importing torch for ``--help`` and ``--version``.

Example:
    >>> import explainaug as xa
    >>> model = xa.models.SmallCNN(num_classes=4, width=8).eval()
    >>> xa.explain.GradCAM(model, layer="block3")(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"
SUBPACKAGES = ("augment", "data", "evaluate", "explain", "losses", "models", "train")
__all__ = [*SUBPACKAGES, "__version__"]


def __getattr__(name: str) -> ModuleType:
    if name in SUBPACKAGES:
        return importlib.import_module(f"explainaug.{name}")
    raise AttributeError(f"module 'explainaug' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *SUBPACKAGES])
