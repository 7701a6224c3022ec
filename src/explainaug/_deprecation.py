"""Deprecated names kept for one release: renamed arguments and renamed public objects.

A renamed argument stays in the signature as a keyword-only parameter defaulting to ``UNSET``;
``renamed_argument`` turns it into the new argument's value and warns. A renamed class or
function stays importable through the module's ``__getattr__`` and ``deprecated_attribute``.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor


class _Unset:
    """The default of a deprecated argument: tells "not given" apart from any real value."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def renamed_argument(
    old_value: Any, new_value: Any, *, old: str, new: str, owner: str, new_default: Any
) -> Any:
    """The value of a renamed argument; warns when the caller used the old name.

    Args:
        old_value: what the caller passed under the old name, or ``UNSET``.
        new_value: what the caller passed under the new name (or its default).
        old, new: the two argument names.
        owner: the function or class, for the message.
        new_default: the new argument's default, to catch callers that give both names.

    Raises:
        TypeError: when the old name was given and the new one holds a value other than its
            default.

    Example:
        >>> renamed_argument(UNSET, 3, old="y", new="labels", owner="f", new_default=None)
        3
    """
    if old_value is UNSET:
        return new_value
    if _differs(new_value, new_default):
        raise TypeError(f"{owner}: give {new}= only (got both {new}= and its old name {old}=)")
    warnings.warn(
        f"{owner}: {old}= is deprecated, use {new}= (the old name goes in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def _differs(value: Any, default: Any) -> bool:
    if value is default:
        return False
    if isinstance(value, Tensor) or isinstance(default, Tensor):
        return True
    return bool(value != default)


def deprecated_attribute(module: str, name: str, renamed: dict[str, tuple[str, Any]]) -> Any:
    """Resolve an old public name of ``module`` through ``renamed`` (old -> (new, object)).

    Meant as the body of a module's ``__getattr__``; unknown names raise ``AttributeError``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     deprecated_attribute("m", "old", {"old": ("new", 1)})
        1
    """
    if name not in renamed:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new, value = renamed[name]
    warnings.warn(
        f"{module}.{name} is deprecated, use {module}.{new} (the old name goes in the next "
        "release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return value
