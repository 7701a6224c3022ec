"""Augmentations fed by saliency: ExCon's masked view, EDDA's occlusions and their baselines.

Every augmentation takes images in [0, 1] (``[B, C, H, W]`` on device in a training step, or a
single ``[C, H, W]`` in a DataLoader worker) and saliency maps of any resolution, and follows
Kornia's ``p`` / ``same_on_batch`` / ``keepdim`` / ``params=`` conventions.

Example:
    >>> import explainaug as xa
    >>> x, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 1, 4, 4)
    >>> xa.augment.SaliencyMask(fill="zero")(x, maps).shape
    torch.Size([2, 3, 8, 8])
"""

from explainaug.augment.base import MaskAugmentationBase, SaliencyAugmentationBase
from explainaug.augment.cache import SaliencyCache, SaliencyDataset
from explainaug.augment.fills import Fill
from explainaug.augment.random_occlusion import RandomOcclusion
from explainaug.augment.saliency_mask import SaliencyMask
from explainaug.augment.saliency_occlusion import SaliencyOcclusion
from explainaug.augment.views import Views, crop_flip, resized_crop_flip, supcon_views

__all__ = [
    "Fill",
    "MaskAugmentationBase",
    "RandomOcclusion",
    "SaliencyAugmentationBase",
    "SaliencyCache",
    "SaliencyDataset",
    "SaliencyMask",
    "SaliencyOcclusion",
    "Views",
    "crop_flip",
    "resized_crop_flip",
    "supcon_views",
]
