"""Saliency methods, batched over images and steps, differentiable with ``create_graph=True``.

Every explainer is built from the model (and ``layer=`` for CAM methods). ``explainer(x, target)``
returns non-negative maps ``[B, 1, H, W]`` at input resolution; ``explainer.attribute(x, target)``
returns the raw attribution in Captum's conventions.
"""

from explainaug._shared import minmax_normalize, upsample
from explainaug.explain._base import Explainer
from explainaug.explain.build import build_explainer, run_explainer
from explainaug.explain.cam import CAM, GradientCAM
from explainaug.explain.decomposition import ContextualDecomposition
from explainaug.explain.eigencam import EigenCAM
from explainaug.explain.gradcam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from explainaug.explain.gradient import InputXGradient, Saliency
from explainaug.explain.guided_backprop import GuidedBackprop
from explainaug.explain.guided_gradcam import GuidedGradCAM
from explainaug.explain.integrated_gradcam import IntegratedGradCAM
from explainaug.explain.integrated_gradients import IntegratedGradients
from explainaug.explain.layers import cam_layer, cam_relu, resolve_layer
from explainaug.explain.occlusion import Occlusion
from explainaug.explain.otsu import otsu_threshold
from explainaug.explain.rise import RISE
from explainaug.explain.scorecam import ScoreCAM
from explainaug.explain.sise import SISE, AdaSISE
from explainaug.explain.smoothgrad import SmoothGrad

__all__ = [
    "CAM",
    "ContextualDecomposition",
    "RISE",
    "SISE",
    "AdaSISE",
    "EigenCAM",
    "Explainer",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientCAM",
    "HiResCAM",
    "LayerCAM",
    "Occlusion",
    "ScoreCAM",
    "XGradCAM",
    "GuidedBackprop",
    "GuidedGradCAM",
    "InputXGradient",
    "IntegratedGradCAM",
    "IntegratedGradients",
    "Saliency",
    "SmoothGrad",
    "build_explainer",
    "cam_layer",
    "cam_relu",
    "run_explainer",
    "minmax_normalize",
    "otsu_threshold",
    "resolve_layer",
    "upsample",
]
