"""Right for the Right Reasons (Ross et al. 2017) as a training method, with its
annotation-free find-another-explanation rounds."""

from __future__ import annotations

from torch import Tensor, nn

from explainaug.losses.rrr import RRR_WEIGHT, input_gradient_penalty
from explainaug.train.methods.annotation import MaskPenalty


class RRR(MaskPenalty):
    """Cross-entropy plus ``penalty_weight`` times the squared input gradient of the summed
    log-probabilities inside the penalised region (``losses.rrr``), double backpropagation.

    The region is the cue masks, the complement of the object masks, or, with
    ``annotation="previous"``, the largest input gradients of the previous rounds' models
    (Ross et al.'s find-another-explanation: train round 0 with ``--method ce``, round 1 with
    ``--previous-runs RUN0``, round 2 with ``--previous-runs RUN0,RUN1``, ...). Arguments as
    :class:`~explainaug.train.methods.annotation.MaskPenalty`; the default weight is Ross et
    al.'s DecoyMNIST value for [0, 1] images (``RRR_WEIGHT``), unscaled.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> masks = torch.zeros(4, 1, 16, 16, dtype=torch.bool)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]), masks, masks)
        >>> method = RRR(annotation="cue")
        >>> method.setup(model)
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> sorted(metrics)
        ['accuracy', 'cross_entropy', 'penalty']
    """

    default_weight = RRR_WEIGHT

    def terms(
        self, model: nn.Module, x: Tensor, y: Tensor, region: Tensor
    ) -> tuple[Tensor, Tensor]:
        return input_gradient_penalty(model, x, region)
