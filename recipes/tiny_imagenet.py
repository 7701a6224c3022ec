#!/usr/bin/env python
"""Tiny ImageNet recipe with the ExCon paper's hyperparameters as defaults.

CIFAR-style ResNet-50 on 64x64 images, 200 epochs, SGD lr 0.5 with a cosine schedule
(contrastive methods; 0.1 for the others), temperature 0.1 with the loss scaled by
temperature / 0.07 (SupContrast's and ExCon's base_temperature), weight decay 1e-4, Grad-CAM on
``layer4.2.conv3`` (the official ExCon layer for Tiny ImageNet), explanations from the first
epoch (the official README uses no warm-up here), the linear head trained in its own epoch after
every contrastive epoch on un-augmented images (the official classifier loader). ``--batch-size`` is the global batch, 128 as
the official code: under torchrun each of N processes takes 128/N images and SupCon/ExCon
contrast across all 128. ``--data`` is the folder that holds ``tiny-imagenet-200``
(train/<wnid>/images, val/images + val_annotations.txt, wnids.txt).

    python recipes/tiny_imagenet.py --method excon --data ~/data --out runs/tin-excon
    torchrun --nproc_per_node=8 recipes/tiny_imagenet.py --method supcon --data ~/data --out runs/tin-supcon
"""

import sys

from explainaug.cli import train_main
from explainaug.settings import Experiment

DEFAULTS = Experiment(
    method="excon",
    dataset="tiny-imagenet",
    model="resnet50",
    width=64,
    epochs=200,
    batch_size=128,
    lr=None,
    weight_decay=1e-4,
    temperature=0.1,
    base_temperature=0.07,
    explain_warmup_epochs=0,
    cam_layer="layer4.2.conv3",
    augment=True,
    linear_head="alternating",
    head_augment=False,
)

if __name__ == "__main__":
    sys.exit(
        train_main(sys.argv[1:], DEFAULTS, prog="recipes/tiny_imagenet.py", description=__doc__)
    )
