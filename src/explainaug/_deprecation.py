"""Deprecated names kept for one release: renamed arguments and renamed public objects.

A function or class whose keyword arguments were renamed is wrapped in ``renamed_kwargs``: the
signature shows only the new names, and a caller using an old one gets a ``DeprecationWarning``.
A renamed class or function stays importable through the module's ``__getattr__`` and
``deprecated_attribute``; a moved module through ``moved_module``, moved names through
``moved_names``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def renamed_kwargs(**old_to_new: str) -> Callable[[F], F]:
    """Accept old keyword names of a function (or a class's ``__init__``) for one release.

    Each old name passed by a caller is moved to its new name with a ``DeprecationWarning``;
    giving both names raises ``TypeError``.

    Example:
        >>> @renamed_kwargs(y="labels")
        ... def count(labels):
        ...     return len(labels)
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     count(y=[1, 2]), caught[0].category.__name__
        (2, 'DeprecationWarning')
    """

    def wrap(function: F) -> F:
        target = function.__init__ if inspect.isclass(function) else function
        owner = function.__qualname__

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{owner}: give {new}= only (got both {new}= and {old}=)")
                    warnings.warn(
                        f"{owner}: {old}= is deprecated, use {new}= (the old name goes in the "
                        "next release)",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return target(*args, **kwargs)

        if inspect.isclass(function):
            function.__init__ = wrapper
            return function
        return wrapper  # type: ignore[return-value]

    return wrap


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


def moved_module(old: str, new: str) -> Callable[[str], Any]:
    """The ``__getattr__`` of module ``old`` whose contents moved to module ``new``: each name
    resolves in ``new``, with a ``DeprecationWarning``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     moved_module("old.path", "math")("pi") > 3
        True
    """
    return lambda name: _moved(old, name, new, "the old module")


def moved_names(old: str, moved: dict[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of module ``old`` some of whose names moved: ``moved`` maps each to
    the module it lives in now; it resolves there, with a ``DeprecationWarning``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     moved_names("old.path", {"pi": "math"})("pi") > 3
        True
    """

    def getattr_(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        return _moved(old, name, moved[name], "the old name")

    return getattr_


def _moved(old: str, name: str, new: str, what: str) -> Any:
    value = getattr(importlib.import_module(new), name)
    warnings.warn(
        f"{old}.{name} is deprecated, use {new}.{name} ({what} goes in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return value
