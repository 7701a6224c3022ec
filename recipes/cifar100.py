#!/usr/bin/env python
"""CIFAR-100 recipe with the ExCon paper's hyperparameters as defaults.

CIFAR ResNet-50 (3x3 stem, no max-pool), 200 epochs, SGD lr 0.5 with a cosine schedule
(contrastive methods; 0.1 for the others), temperature 0.1 with the loss scaled by
temperature / 0.07 (SupContrast's and ExCon's base_temperature; ``--base-temperature 0.1`` gives
scale 1), weight decay 1e-4, Grad-CAM on ``layer2.3.conv3`` (the official ExCon layer), 49
warm-up epochs before the explanations start (the official ``--exp_epochs 50``: its 1-based loop
masks when ``epoch >= 50``). As the official loop, every contrastive epoch is followed by one
cross-entropy epoch of the linear head on detached features of randomly resized-cropped and
flipped training images; that head is ExCon's probe. The reported accuracy is the final epoch's
(``--report-best-epoch`` adds the official best-over-epochs test accuracy). ``--batch-size`` is the global batch, 256 as the official code:
under torchrun each of N processes takes 256/N images and SupCon/ExCon contrast across all 256,
so a run means the same on any number of GPUs.

    python recipes/cifar100.py --method excon --data ~/data --download --out runs/c100-excon
    torchrun --nproc_per_node=4 recipes/cifar100.py --method edda --data ~/data --out runs/c100-edda
    python recipes/cifar100.py --method excon --data ~/data --out runs/c100-excon --resume auto
"""

import sys

from explainaug.cli import train_main
from explainaug.settings import Experiment

DEFAULTS = Experiment(
    method="excon",
    dataset="cifar100",
    model="resnet50",
    width=64,
    epochs=200,
    batch_size=256,
    lr=None,
    weight_decay=1e-4,
    temperature=0.1,
    base_temperature=0.07,
    explain_warmup_epochs=49,
    cam_layer="layer2.3.conv3",
    augment=True,
    linear_head="alternating",
    head_augment=True,
)

if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:], DEFAULTS, prog="recipes/cifar100.py", description=__doc__))
