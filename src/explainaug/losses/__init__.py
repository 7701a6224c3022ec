"""Losses: supervised contrastive (SupCon), ExCon with background negatives, EDDA alignment,
CDEP's contextual-decomposition penalty."""

from explainaug.losses.cdep import CDEPPenalty, cdep_penalty, single_pixel_masks
from explainaug.losses.edda import EDDALoss
from explainaug.losses.excon import ExConLoss
from explainaug.losses.supcon import SupConLoss, supervised_contrastive

__all__ = [
    "CDEPPenalty",
    "EDDALoss",
    "ExConLoss",
    "SupConLoss",
    "cdep_penalty",
    "single_pixel_masks",
    "supervised_contrastive",
]
