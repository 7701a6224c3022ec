"""Models: CIFAR ResNet-18/50, a small CNN and the contrastive wrapper.

Models take images in [0, 1] and normalise inside (``mean=``, ``std=``). Each model names its
default Grad-CAM layer in ``default_cam_layer``. ``build_model`` builds them, and torchvision or
timm models, by name (``registry.MODELS``); ``adapt`` gives any classifier the package's
conventions.
"""

from explainaug.models.adapt import adapt
from explainaug.models.build import build_model, rebuild_model
from explainaug.models.contrastive import ContrastiveModel
from explainaug.models.normalize import Normalize
from explainaug.models.resnet import CifarResNet, resnet18, resnet50
from explainaug.models.small_cnn import SmallCNN

__all__ = [
    "CifarResNet",
    "ContrastiveModel",
    "Normalize",
    "SmallCNN",
    "adapt",
    "build_model",
    "rebuild_model",
    "resnet18",
    "resnet50",
]
