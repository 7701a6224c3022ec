"""Training methods: one class per method, all with ``training_step(model, batch, epoch)``."""

from explainaug.train.methods.annotation import Annotation, MaskPenalty
from explainaug.train.methods.base import Method, OcclusionAlignment
from explainaug.train.methods.cam_penalty import HINT, RRRGradCAM
from explainaug.train.methods.cdep import CDEP
from explainaug.train.methods.cross_entropy import CrossEntropy
from explainaug.train.methods.edda import EDDA
from explainaug.train.methods.excon import ExCon
from explainaug.train.methods.random_occlusion import RandomOcclusionControl
from explainaug.train.methods.rrr import RRR
from explainaug.train.methods.sgt import SaliencyGuidedTraining
from explainaug.train.methods.supcon import SupCon

__all__ = [
    "CDEP",
    "EDDA",
    "HINT",
    "RRR",
    "Annotation",
    "CrossEntropy",
    "ExCon",
    "MaskPenalty",
    "Method",
    "OcclusionAlignment",
    "RRRGradCAM",
    "RandomOcclusionControl",
    "SaliencyGuidedTraining",
    "SupCon",
]
