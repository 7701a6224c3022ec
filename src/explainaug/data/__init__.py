"""Datasets, on-device CIFAR-C corruptions and a device-resident loader.

Every image handed out is float ``[C, H, W]`` (batches ``[B, C, H, W]``) in [0, 1]; storage is
uint8. Models normalise inside with the dataset's ``mean``/``std``.

Example:
    >>> from explainaug.data import DeviceLoader, shapes
    >>> x, y, masks = next(iter(DeviceLoader(shapes(n=16, size=16), batch_size=8, device="cpu")))
    >>> x.shape, masks.dtype
    (torch.Size([8, 3, 16, 16]), torch.bool)
"""

from explainaug.data.cifar import CIFAR100_MEAN, CIFAR100_STD, cifar100
from explainaug.data.corrupted_npy import SEVERITIES, corrupted_npy
from explainaug.data.corruptions import CORRUPTIONS, corrupt
from explainaug.data.device_loader import DeviceLoader, fits_on_device, make_loader
from explainaug.data.digits import digits
from explainaug.data.image_files import ImageFileDataset, fit_image, read_image, read_images
from explainaug.data.image_folder import folder_split, image_folder
from explainaug.data.shapes import SHAPE_NAMES, shapes
from explainaug.data.tensor_dataset import ImageTensorDataset, channel_stats
from explainaug.data.tiny_imagenet import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD, tiny_imagenet

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CORRUPTIONS",
    "SEVERITIES",
    "SHAPE_NAMES",
    "TINY_IMAGENET_MEAN",
    "TINY_IMAGENET_STD",
    "DeviceLoader",
    "ImageFileDataset",
    "ImageTensorDataset",
    "channel_stats",
    "cifar100",
    "corrupt",
    "corrupted_npy",
    "digits",
    "fit_image",
    "fits_on_device",
    "folder_split",
    "image_folder",
    "make_loader",
    "read_image",
    "read_images",
    "shapes",
    "tiny_imagenet",
]
