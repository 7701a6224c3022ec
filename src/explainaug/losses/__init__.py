"""Losses: supervised contrastive (SupCon), ExCon with background negatives, EDDA alignment,
and the right-for-the-right-reasons family (RRR, Saliency Guided Training, RRR-G, HINT,
CDEP's contextual-decomposition penalty)."""

from explainaug.losses.cam_penalty import (
    HINTLoss,
    RRRGradCAMLoss,
    gradcam_terms,
    hint_penalty,
    rrr_gradcam_penalty,
)
from explainaug.losses.cdep import CDEPPenalty, cdep_penalty, single_pixel_masks
from explainaug.losses.edda import EDDALoss
from explainaug.losses.excon import ExConLoss
from explainaug.losses.rrr import RRR_WEIGHT, RRRLoss, input_gradient_penalty
from explainaug.losses.sgt import SGTLoss
from explainaug.losses.supcon import SupConLoss, supervised_contrastive

__all__ = [
    "CDEPPenalty",
    "RRR_WEIGHT",
    "EDDALoss",
    "ExConLoss",
    "HINTLoss",
    "RRRGradCAMLoss",
    "RRRLoss",
    "SGTLoss",
    "SupConLoss",
    "cdep_penalty",
    "gradcam_terms",
    "hint_penalty",
    "input_gradient_penalty",
    "rrr_gradcam_penalty",
    "single_pixel_masks",
    "supervised_contrastive",
]
