"""Adebayo et al.'s data randomization test needs a model trained on permuted labels."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from explainaug._shared import unpack_batch
from explainaug._validation import check_count, check_images, check_labels, check_positive
from explainaug.evaluate.accuracy import accuracy
from explainaug.train.methods.cross_entropy import CrossEntropy
from explainaug.train.trainer import Trainer


def train_on_permuted_labels(
    make_model: Callable[[], nn.Module],
    loader: Iterable,
    epochs: int,
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[nn.Module, float]:
    """Train a fresh model on the loader's images with labels permuted across the dataset.

    The loader is read once into memory (meant for the small subsets this test uses); the
    labels of all images are shuffled with a fixed permutation (``seed``), so each image keeps
    one random label for the whole training, as in Adebayo et al. The :class:`Trainer` trains
    with cross-entropy and Adam at a constant learning rate on mini-batches of ``batch_size``,
    shuffled each epoch; the paper trains until train accuracy exceeds 95%, so pick ``epochs``
    accordingly and check the returned accuracy. Compare the maps with
    ``explainaug.evaluate.data_randomization``.

    Args:
        make_model: builds an untrained model (same architecture as the model under test).
        loader: iterable of ``(x, y)`` or ``(x, y, masks)`` batches, images in [0, 1].
        epochs: passes over the data.
        lr, weight_decay: Adam's settings.
        batch_size: mini-batch size.
        seed: seeds the permutation, the shuffling and the model's initialisation.
        device: where to train; default CUDA when available, else the CPU.

    Returns:
        ``(model in eval mode, accuracy on the permuted training labels)``.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> data = [(torch.rand(8, 3, 16, 16), torch.arange(8) % 2)]
        >>> model, accuracy = train_on_permuted_labels(
        ...     lambda: SmallCNN(num_classes=2, width=4), data, epochs=1)
        >>> model.training, accuracy * 8 == round(accuracy * 8)  # eval mode; a count of 8
        (False, True)
    """
    check_count(epochs, "epochs")
    check_positive(lr, "lr")
    images, labels = [], []
    for batch in loader:
        x, y, *_ = unpack_batch(batch)
        images.append(check_images(x).detach().cpu())
        labels.append(check_labels(y, x.shape[0]).cpu())
    if not images:
        raise ValueError("loader is empty: train_on_permuted_labels needs at least one batch")
    x_all, y_all = torch.cat(images), torch.cat(labels).long()
    generator = torch.Generator().manual_seed(seed)
    y_all = y_all[torch.randperm(len(y_all), generator=generator)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
    permuted = TensorDataset(x_all, y_all)
    shuffled = DataLoader(permuted, batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    trainer = Trainer(
        model,
        CrossEntropy(),
        epochs,
        optimizer=optimizer,
        final_lr_ratio=1.0,
        amp=None,
        device=device,
        progress=False,
        seed=seed,
    )
    trainer.fit(shuffled)
    in_order = DataLoader(permuted, batch_size)
    fit = accuracy(trainer.model, in_order, topk=(1,), per_class=False)["top1"]
    return trainer.model.eval(), fit
