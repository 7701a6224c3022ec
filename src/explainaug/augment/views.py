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

from explainaug._validation import check_count
from explainaug.augment.base import as_image_batch


class Views(nn.Module):
    """Stack ``n_views`` independent draws of an augmentation: ``[B, C, H, W] -> [B, V, C, h, w]``
    (``[C, H, W] -> [V, C, h, w]`` for one image, as in a DataLoader worker).

    The batch is repeated ``n_views`` times and augmented in a single call, so every view of every
    image gets its own random parameters.

    Args:
        augmentation: a batched augmentation (e.g. a Kornia pipeline) of images in [0, 1].
        n_views: number of views per image (>= 1).
        rgb: the augmentation needs RGB (colour jitter, grayscale): 1-channel images then go
            through it as gray RGB and come back with 1 channel, so only brightness, contrast and
            geometry change them; other channel counts than 1 and 3 raise ``ValueError``.
        check_values: check on every call that images lie in [0, 1] (one host-device sync);
            training steps turn it off.

    Example:
        >>> views = Views(K.RandomHorizontalFlip(), n_views=3)
        >>> views(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 3, 8, 8])
        >>> views(torch.rand(1, 8, 8)).shape
        torch.Size([3, 1, 8, 8])
    """

    def __init__(
        self,
        augmentation: nn.Module,
        *,
        n_views: int = 2,
        rgb: bool = False,
        check_values: bool = True,
    ) -> None:
        super().__init__()
        check_count(n_views, "n_views")
        self.augmentation = augmentation
        self.n_views = n_views
        self.rgb = bool(rgb)
        self.check_values = bool(check_values)

    def forward(self, x: Tensor) -> Tensor:
        """Views ``[B, n_views, C, h, w]`` of images ``x`` ``[B, C, H, W]`` in [0, 1] (or
        ``[n_views, C, h, w]`` of one image ``[C, H, W]``)."""
        batch = as_image_batch(x, check_values=self.check_values)
        batch_size, channels = batch.shape[:2]
        gray = self.rgb and channels == 1
        if self.rgb and channels not in (1, 3):
            raise ValueError(
                f"x must have 1 (gray) or 3 (RGB) channels for this colour augmentation, got "
                f"shape {tuple(x.shape)}"
            )
        repeated = batch.unsqueeze(1).expand(-1, self.n_views, -1, -1, -1).flatten(0, 1)
        views = self.augmentation(repeated.expand(-1, 3, -1, -1) if gray else repeated)
        if gray:  # the three channels stay equal under colour jitter and grayscale
            views = views.mean(1, keepdim=True)
        views = views.view(batch_size, self.n_views, *views.shape[1:])
        return views[0] if x.ndim == 3 else views

    def extra_repr(self) -> str:
        return f"n_views={self.n_views}, rgb={self.rgb}, check_values={self.check_values}"


def supcon_views(
    size: int | tuple[int, int],
    *,
    n_views: int = 2,
    scale: tuple[float, float] = (0.2, 1.0),
    check_values: bool = True,
) -> Views:
    """SupContrast's augmentation as a Kornia pipeline returning ``n_views`` views per image.

    Takes RGB or 1-channel images in [0, 1] (see :class:`Views`). ``scale`` is the area range of
    the random resized crop (SupContrast: (0.2, 1); raise the lower end for small objects that
    such crops would cut out).

    Example:
        >>> supcon_views(16)(torch.rand(4, 3, 32, 32)).shape
        torch.Size([4, 2, 3, 16, 16])
        >>> supcon_views(16)(torch.rand(1, 32, 32)).shape
        torch.Size([2, 1, 16, 16])
    """
    size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    pipeline = K.AugmentationSequential(
        K.RandomResizedCrop(size, scale=scale),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    )
    return Views(pipeline, n_views=n_views, rgb=True, check_values=check_values)


def crop_flip(size: int | tuple[int, int]) -> nn.Module:
    """Random crop with zero padding of an eighth of the side, and horizontal flip: the
    classification methods' augmentation (the CIFAR standard, padding 4 at 32 px).

    Example:
        >>> crop_flip(32)(torch.rand(4, 3, 32, 32)).shape
        torch.Size([4, 3, 32, 32])
    """
    size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return K.AugmentationSequential(
        K.RandomCrop(size, padding=min(size) // 8), K.RandomHorizontalFlip()
    )


def resized_crop_flip(size: int | tuple[int, int]) -> nn.Module:
    """Random resized crop (scale 0.2-1) and horizontal flip: the official ExCon classifier
    loader's augmentation on CIFAR-100, for the linear head's epoch.

    Example:
        >>> resized_crop_flip(16)(torch.rand(4, 3, 16, 16)).shape
        torch.Size([4, 3, 16, 16])
    """
    size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return K.AugmentationSequential(
        K.RandomResizedCrop(size, scale=(0.2, 1.0)), K.RandomHorizontalFlip()
    )
