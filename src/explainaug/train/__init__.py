"""Training: a thin loop (AMP, DDP via torchrun, atomic checkpoints, exact resume) and one class
per method (CrossEntropy, SupCon, ExCon, EDDA, RandomOcclusionControl, and the
right-for-the-right-reasons family: RRR, SaliencyGuidedTraining, RRRGradCAM, HINT, CDEP), plus
linear evaluation and the permuted-label training of the data randomization test.
"""

from explainaug.train.checkpoint import load_checkpoint, save_checkpoint
from explainaug.train.linear_eval import LinearEvalResult, linear_eval
from explainaug.train.methods import (
    CDEP,
    EDDA,
    HINT,
    RRR,
    Annotation,
    CrossEntropy,
    ExCon,
    MaskPenalty,
    Method,
    OcclusionAlignment,
    RandomOcclusionControl,
    RRRGradCAM,
    SaliencyGuidedTraining,
    SupCon,
)
from explainaug.train.permuted_labels import train_on_permuted_labels
from explainaug.train.schedule import lr_factor
from explainaug.train.trainer import Trainer

__all__ = [
    "CDEP",
    "EDDA",
    "HINT",
    "RRR",
    "Annotation",
    "CrossEntropy",
    "ExCon",
    "MaskPenalty",
    "RRRGradCAM",
    "SaliencyGuidedTraining",
    "LinearEvalResult",
    "Method",
    "OcclusionAlignment",
    "RandomOcclusionControl",
    "SupCon",
    "Trainer",
    "linear_eval",
    "load_checkpoint",
    "lr_factor",
    "save_checkpoint",
    "train_on_permuted_labels",
]
