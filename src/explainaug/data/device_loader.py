"""A loader that keeps a whole small dataset on the device and batches it there.

For datasets that fit in device memory as uint8 (CIFAR-100 train is 150 MB), this replaces
``DataLoader`` workers, pinned memory and host-to-device copies: each epoch is one ``randperm`` on
the device and each batch one gather plus a uint8 -> float conversion.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from explainaug._validation import check_count
from explainaug.data.tensor_dataset import ImageTensorDataset

logger = logging.getLogger("explainaug")


class DeviceLoader:
    """Iterate over ``(x, y)`` or ``(x, y, masks)`` batches held on ``device``.

    ``x`` is float ``[B, C, H, W]`` in [0, 1] (not normalised: models normalise inside), ``y``
    long ``[B]``, ``masks`` bool ``[B, 1, H, W]``. With ``cue_masks=True`` batches are
    ``(x, y, masks, cue_masks)`` (what ``explainaug.evaluate.shortcut`` reads).

    Shuffling uses a ``torch.Generator`` on the device seeded from ``(seed, epoch)`` only, so an
    epoch's order is reproducible (for a given device type). Each ``iter()`` uses the current
    epoch and then advances it; ``set_epoch(e)`` chooses the next one. Under
    ``torch.distributed`` every rank takes a disjoint, strided slice of the same permutation,
    padded by wrapping around to equal length, like ``DistributedSampler``.

    Args:
        data: an :class:`ImageTensorDataset`, or a tuple ``(images uint8 [N,C,H,W], labels [N])``
            or ``(images, labels, masks bool [N,1,H,W])``.
        batch_size: samples per batch (per rank).
        shuffle: draw a new permutation each epoch (else dataset order).
        drop_last: drop the last, smaller batch.
        device: where data and batches live; CUDA when available, else CPU, when None.
        seed: seed of the permutations.
        rank: this process's rank; from ``torch.distributed`` when None (0 if not initialised).
        world_size: number of ranks; from ``torch.distributed`` when None (1 if not initialised).
        cue_masks: also yield the dataset's cue masks (it must have object and cue masks).

    Example:
        >>> images = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1)
        >>> loader = DeviceLoader((images, torch.arange(4)), batch_size=3, shuffle=False,
        ...                       device="cpu")
        >>> [y.tolist() for _, y in loader], len(loader)
        ([[0, 1, 2], [3]], 2)
    """

    def __init__(
        self,
        data: ImageTensorDataset | tuple[Tensor, ...],
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        device: torch.device | str | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        cue_masks: bool = False,
    ) -> None:
        if isinstance(data, tuple):
            if len(data) not in (2, 3):
                raise ValueError(
                    f"data must be (images, labels) or (images, labels, masks), "
                    f"got a tuple of {len(data)}"
                )
            data = ImageTensorDataset(
                *data, mean=(0.0,) * data[0].shape[1], std=(1.0,) * data[0].shape[1]
            )
        if not isinstance(data, ImageTensorDataset):
            raise TypeError(
                f"data must be an ImageTensorDataset or a tuple of tensors, got "
                f"{type(data).__name__}"
            )
        check_count(batch_size, "batch_size")
        if cue_masks and (data.masks is None or data.cue_masks is None):
            raise ValueError(
                "cue_masks=True needs a dataset with object and cue masks "
                "(shapes(..., cue_correlation=p)), got one without"
            )
        distributed = dist.is_available() and dist.is_initialized()
        if world_size is None:
            world_size = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.masks = data.masks.to(self.device) if data.masks is not None else None
        self.cue_masks = data.cue_masks.to(self.device) if cue_masks else None
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.samples_per_rank = math.ceil(len(data) / world_size)
        _check_batch_fits(self.samples_per_rank, batch_size, world_size, drop_last, shuffle)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use ``epoch``'s permutation."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.samples_per_rank // self.batch_size
        return math.ceil(self.samples_per_rank / self.batch_size)

    def _rank_indices(self) -> Tensor:
        n = self.images.shape[0]
        if self.shuffle:
            generator = torch.Generator(device=self.device)
            # Hash (seed, epoch) into one 32-bit seed (CPU generators use only 32 bits).
            mixed = np.random.SeedSequence((self.seed, self.epoch)).generate_state(1)[0]
            generator.manual_seed(int(mixed))
            order = torch.randperm(n, generator=generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        total = self.samples_per_rank * self.world_size
        if total > n:  # wrap around so that every rank gets the same number of samples
            order = order.repeat(math.ceil(total / n))[:total]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        indices = self._rank_indices()
        self.epoch += 1
        for batch in range(len(self)):
            chosen = indices[batch * self.batch_size : (batch + 1) * self.batch_size]
            x = self.images[chosen].float().div_(255.0)
            if self.masks is None:
                yield x, self.labels[chosen]
            elif self.cue_masks is None:
                yield x, self.labels[chosen], self.masks[chosen]
            else:
                yield x, self.labels[chosen], self.masks[chosen], self.cue_masks[chosen]


def _check_batch_fits(
    samples_per_rank: int, batch_size: int, world_size: int, drop_last: bool, shuffle: bool
) -> None:
    """Refuse ``drop_last`` with a batch larger than the samples a rank has: no batch would be
    left (a training loop would run empty epochs). Log the images it leaves out otherwise."""
    if not drop_last:
        return
    where = "of the dataset" if world_size == 1 else f"per process ({world_size} processes)"
    if samples_per_rank < batch_size:
        raise ValueError(
            f"a batch of {batch_size} is larger than the {samples_per_rank} images {where}, "
            f"so no full batch is left to train on; use a batch size of at most {samples_per_rank}"
        )
    left_out = samples_per_rank % batch_size
    if left_out:
        logger.info(
            "drop_last: each epoch trains on %d of the %d images %s; the %s %d sit out",
            samples_per_rank - left_out,
            samples_per_rank,
            where,
            "different" if shuffle else "same",
            left_out,
        )


def fits_on_device(
    n_bytes: int, *, device: str | torch.device | None = None, fraction: float = 0.25
) -> bool:
    """Whether ``n_bytes`` of data take at most ``fraction`` of the free memory of ``device``
    (CUDA: free device memory; CPU: available RAM). Default device: CUDA if available.

    Example:
        >>> fits_on_device(1024, device="cpu"), fits_on_device(2**62, device="cpu")
        (True, False)
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return n_bytes <= fraction * free


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
    device: str | torch.device | None = None,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    num_workers: int | None = None,
    cue_masks: bool = False,
) -> DeviceLoader | DataLoader:
    """A loader of ``dataset`` sharded by rank: a ``DeviceLoader`` for an in-memory
    :class:`ImageTensorDataset`, else a ``DataLoader`` whose workers decode (with a
    ``DistributedSampler``, whose ``set_epoch`` the ``Trainer`` calls).

    ``rank``/``world_size`` default to ``torch.distributed``'s (0 and 1 when not initialised);
    ``num_workers`` defaults to the CPU count, at most 8. ``cue_masks``: batches are
    ``(x, y, masks, cue_masks)`` (a file dataset yields every mask it has files for).

    Example:
        >>> images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
        >>> type(make_loader(ImageTensorDataset(images, torch.arange(4)), 2, device="cpu")).__name__
        'DeviceLoader'
    """
    if isinstance(dataset, ImageTensorDataset):
        return DeviceLoader(
            dataset,
            batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            device=device,
            seed=seed,
            rank=rank,
            world_size=world_size,
            cue_masks=cue_masks,
        )
    distributed = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if distributed else 1
    if rank is None:
        rank = dist.get_rank() if distributed else 0
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
    )
    per_rank = math.ceil(len(dataset) / world_size)
    _check_batch_fits(per_rank, batch_size, world_size, drop_last, shuffle)
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    pin = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    return DataLoader(
        dataset,
        batch_size=check_count(batch_size, "batch_size"),
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin,
        persistent_workers=num_workers > 0,
    )
