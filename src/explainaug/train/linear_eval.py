"""Linear evaluation of a frozen encoder: train a fresh linear classifier on its features."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import eval_mode, unpack_batch
from explainaug._validation import check_count
from explainaug.train.schedule import lr_factor


@dataclass
class LinearEvalResult:
    """Outcome of ``linear_eval``.

    Attributes:
        classifier: the trained linear layer (features -> logits).
        test_accuracy: top-1 accuracy on the test loader after the last epoch (no selection of
            the best epoch on the test set, unlike SupContrast's and ExCon's scripts).
        history: per epoch, the mean training loss and accuracy.
    """

    classifier: nn.Linear
    test_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)


def linear_eval(
    encoder: nn.Module,
    train_loader: Iterable,
    test_loader: Iterable,
    num_classes: int,
    *,
    epochs: int = 10,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> LinearEvalResult:
    """Train a linear classifier on the frozen features of ``encoder`` and test it.

    The encoder runs in eval mode without gradients (its mode is restored afterwards); a
    ``ContrastiveModel`` is evaluated through ``features``. SGD with a per-step cosine schedule.

    Args:
        encoder: a ``ContrastiveModel`` or any module mapping images in [0, 1] to ``[B, D]``.
        train_loader: batches ``(x, y)`` for training the classifier.
        test_loader: batches ``(x, y)`` for the reported accuracy.
        num_classes: outputs of the classifier.
        epochs: passes over ``train_loader``.
        lr: base learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay (0 as in SupContrast's linear stage).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> batches = [(torch.rand(8, 3, 16, 16), torch.arange(8) % 2)]
        >>> result = linear_eval(SmallCNN(None, width=4), batches, batches, num_classes=2, epochs=2)
        >>> result.classifier.out_features, len(result.history)
        (2, 2)
    """
    check_count(epochs, "epochs")
    device = next(encoder.parameters()).device
    embed: Callable[[Tensor], Tensor] = getattr(encoder, "features", encoder)
    with eval_mode(encoder):

        def features_of(batch: object) -> tuple[Tensor, Tensor]:
            x, y, *_ = unpack_batch(batch)
            with torch.no_grad():
                return embed(x.to(device)).flatten(1).float(), y.to(device)

        classifier: nn.Linear | None = None
        optimizer: torch.optim.Optimizer | None = None
        steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        step, history = 0, []
        for _ in range(epochs):
            totals = torch.zeros(3, device=device)
            for batch in train_loader:
                features, y = features_of(batch)
                if classifier is None:
                    classifier = nn.Linear(features.shape[1], num_classes).to(device)
                    optimizer = torch.optim.SGD(
                        classifier.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
                    )
                for group in optimizer.param_groups:  # type: ignore[union-attr]
                    group["lr"] = lr * lr_factor(step, epochs * steps_per_epoch)
                logits = classifier(features)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)  # type: ignore[union-attr]
                loss.backward()
                optimizer.step()  # type: ignore[union-attr]
                step += 1
                totals += torch.stack(
                    [
                        loss.detach() * y.shape[0],
                        (logits.argmax(1) == y).sum().float(),
                        torch.tensor(float(y.shape[0]), device=device),
                    ]
                )
            loss_sum, correct, seen = totals.tolist()
            history.append({"loss": loss_sum / seen, "accuracy": correct / seen})
        if classifier is None:
            raise ValueError("train_loader yields no batches")
        correct = seen = 0
        with torch.no_grad():
            for batch in test_loader:
                features, y = features_of(batch)
                correct += int((classifier(features).argmax(1) == y).sum())
                seen += y.shape[0]
        if seen == 0:
            raise ValueError("test_loader yields no batches")
        return LinearEvalResult(classifier, correct / seen, history)
