"""Multi-view contrastive augmentation on device (Kornia), and how saliency follows the geometry.

``supcon_views(size)`` is SupContrast's training augmentation (RandomResizedCrop with scale
(0.2, 1), horizontal flip, ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` with p=0.8, grayscale with p=0.2)
as one Kornia pipeline run on whole batches. Kornia's ``ColorJitter`` matches torchvision's (its
``ColorJiggle`` does not), so the views follow the reference recipe.

Keeping a saliency map aligned with a geometric augmentation: pass it as a mask that Kornia warps
bilinearly, then mask or occlude the warped image with the warped map::

    geometry = kornia.augmentation.AugmentationSequential(
        K.RandomResizedCrop((32, 32), scale=(0.2, 1.0)), K.RandomHorizontalFlip(),
        data_keys=["input", "mask"],
        extra_args={DataKey.MASK: {"resample": Resample.BILINEAR, "align_corners": None}})
    image, saliency = geometry(x, saliency)     # saliency [B, 1, H, W] float
    view = SaliencyMask()(image, saliency)

(or replay the geometry on the map alone: ``geometry(saliency, params=geometry._params)`` with a
single-key pipeline).
"""

from __future__ import annotations

import kornia.augmentation as K
from torch import Tensor, nn

from explainaug._validation import check_count, check_images


class Views(nn.Module):
    """Stack ``n_views`` independent draws of an augmentation: ``[B, C, H, W] -> [B, V, C, h, w]``.

    The batch is repeated ``n_views`` times and augmented in a single call, so every view of every
    image gets its own random parameters.

    Args:
        augmentation: a batched augmentation (e.g. a Kornia pipeline) of images in [0, 1].
        n_views: number of views per image (>= 1).

    Example:
        >>> views = Views(K.RandomHorizontalFlip(), n_views=3)
        >>> views(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 3, 8, 8])
    """

    def __init__(self, augmentation: nn.Module, n_views: int = 2) -> None:
        super().__init__()
        check_count(n_views, "n_views")
        self.augmentation = augmentation
        self.n_views = n_views

    def forward(self, x: Tensor) -> Tensor:
        """Views ``[B, n_views, C, h, w]`` of images ``x`` ``[B, C, H, W]`` in [0, 1]."""
        x = check_images(x, finite=False)
        batch_size = x.shape[0]
        repeated = x.unsqueeze(1).expand(-1, self.n_views, -1, -1, -1).flatten(0, 1)
        views = self.augmentation(repeated)
        return views.view(batch_size, self.n_views, *views.shape[1:])

    def extra_repr(self) -> str:
        return f"n_views={self.n_views}"


def supcon_views(
    size: int | tuple[int, int], n_views: int = 2, scale: tuple[float, float] = (0.2, 1.0)
) -> Views:
    """SupContrast's augmentation as a Kornia pipeline returning ``n_views`` views per image.

    Args:
        size: output size (``int`` for square views, or ``(h, w)``).
        n_views: number of independent views per image.
        scale: area range of the random resized crop (SupContrast: (0.2, 1); raise the lower
            end for small objects that such crops would cut out).

    Returns:
        A :class:`Views` module; call it on batches ``[B, C, H, W]`` in [0, 1] on any device.

    Example:
        >>> supcon_views(16)(torch.rand(4, 3, 32, 32)).shape
        torch.Size([4, 2, 3, 16, 16])
    """
    size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    pipeline = K.AugmentationSequential(
        K.RandomResizedCrop(size, scale=scale),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    )
    return Views(pipeline, n_views)
