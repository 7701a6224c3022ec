"""Losses: supervised contrastive (SupCon), ExCon with background negatives, EDDA alignment."""

from explainaug.losses.edda import EDDALoss
from explainaug.losses.excon import ExConLoss
from explainaug.losses.supcon import SupConLoss, supervised_contrastive

__all__ = ["EDDALoss", "ExConLoss", "SupConLoss", "supervised_contrastive"]
