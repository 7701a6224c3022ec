"""Deprecated alias of :mod:`explainaug.distributed` (removed in the next release)."""

from explainaug._deprecation import moved_module

__getattr__ = moved_module(__name__, "explainaug.distributed")
