"""Saliency methods, batched over images and steps, differentiable with ``create_graph=True``.

Every explainer is built from the model (and ``layer=`` for CAM methods). ``explainer(x, target)``
returns non-negative maps ``[B, 1, H, W]`` at input resolution; ``explainer.attribute(x, target)``
returns the raw attribution in Captum's conventions.
"""

from explainaug.explain._base import Explainer, minmax_normalize, resolve_layer, upsample

__all__ = ["Explainer", "minmax_normalize", "resolve_layer", "upsample"]
