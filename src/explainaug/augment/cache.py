"""Saliency maps cached per dataset index, shared with DataLoader workers.

Training computes maps on device and writes them with :meth:`SaliencyCache.update`; workers read
them through :class:`SaliencyDataset` and can mask or occlude single images on the CPU. Call
:meth:`SaliencyCache.share_memory_` before the workers start: later updates from the training
process are then visible in the workers (also with ``persistent_workers=True``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from explainaug._shared import minmax_normalize
from explainaug._validation import check_count, check_maps, check_tensor


class SaliencyCache:
    """One low-resolution float16 map per dataset index.

    Maps are stored area-resized to ``size`` and min-max normalised per item (the masks of
    :mod:`explainaug.augment` are invariant to that, and it keeps any saliency scale inside
    float16). Entries never written have ``filled[index] == False`` and read as a fresh uniform
    random map on every access (``cache[i]``, ``cache.get(i)``, :class:`SaliencyDataset`): before
    its first update an item is masked or occluded at random places, like
    :class:`~explainaug.augment.RandomOcclusion`, never at a fixed position (an all-zero map
    would select the top rows, or nothing).

    Args:
        num_items: number of dataset items.
        size: stored map size ``(h, w)``.
        device: where the maps live; keep ``"cpu"`` to share them with DataLoader workers.

    Example:
        >>> cache = SaliencyCache(4, size=(2, 2))
        >>> cache.update(torch.tensor([1]), torch.tensor([[[2.0, 4.0], [6.0, 10.0]]]))
        >>> cache[1].tolist()
        [[[0.0, 0.25], [0.5, 1.0]]]
        >>> cache.filled.tolist()
        [False, True, False, False]
        >>> bool(cache[0].eq(cache[0]).all())  # not updated yet: a new random map each time
        False
    """

    def __init__(
        self, num_items: int, *, size: tuple[int, int] = (8, 8), device: torch.device | str = "cpu"
    ) -> None:
        check_count(num_items, "num_items")
        if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"size must be two ints >= 1, got {size!r}")
        self.size = (size[0], size[1])
        self.maps = torch.zeros(num_items, 1, *self.size, dtype=torch.float16, device=device)
        self.filled = torch.zeros(num_items, dtype=torch.bool, device=device)

    def __len__(self) -> int:
        return self.maps.shape[0]

    def share_memory_(self) -> SaliencyCache:
        """Move the storage to shared memory (CPU caches) so DataLoader workers see updates."""
        self.maps.share_memory_()
        self.filled.share_memory_()
        return self

    def update(self, indices: Tensor, maps: Tensor) -> None:
        """Store ``maps`` ``[B, 1, H, W]`` (or ``[B, H, W]``) of the items ``indices`` ``[B]``.

        Maps are resized (area) and normalised on their own device, then copied: only
        ``h * w`` values per item cross devices. With repeated indices, one of the maps is kept.
        """
        indices = check_tensor(indices, "indices")
        if indices.dtype != torch.long or indices.ndim != 1:
            raise TypeError(
                f"indices must be a 1-D LongTensor, got {indices.dtype} {tuple(indices.shape)}"
            )
        maps = check_maps(maps, maps)  # checks only the maps' own shape and values
        if maps.shape[0] != indices.shape[0]:
            raise ValueError(f"{indices.shape[0]} indices but {maps.shape[0]} maps")
        if indices.numel() and not (0 <= int(indices.min()) and int(indices.max()) < len(self)):
            raise ValueError(f"indices must lie in [0, {len(self) - 1}], got {indices.tolist()}")
        small = minmax_normalize(F.interpolate(maps.float(), size=self.size, mode="area"))
        indices = indices.to(self.maps.device)
        self.maps[indices] = small.to(self.maps.device, torch.float16)
        self.filled[indices] = True

    def get(self, index: int) -> Tensor:
        """The map ``[1, h, w]`` (float32) of item ``index``; random if it was never updated."""
        return self[torch.tensor([index], device=self.maps.device)][0]

    def __getitem__(self, indices: int | Tensor | Sequence[int]) -> Tensor:
        """``[1, h, w]`` for an ``int``, ``[B, 1, h, w]`` (float32) for a batch of indices; items
        never updated get uniform random maps."""
        if isinstance(indices, int):
            return self.get(indices)
        indices = torch.as_tensor(indices, dtype=torch.long, device=self.maps.device)
        maps = self.maps[indices].float()
        unfilled = ~self.filled[indices].view(-1, 1, 1, 1)
        return torch.where(unfilled, torch.rand_like(maps), maps)

    def __repr__(self) -> str:
        return f"SaliencyCache(num_items={len(self)}, size={self.size}, device={self.maps.device})"


class SaliencyDataset(Dataset):
    """Wrap a dataset of ``(image, label[, ...])`` to yield ``(image, saliency, label[, index])``.

    Items beyond ``(image, label)`` (such as the object masks of ``shapes()``) are dropped.

    ``image`` is what the base dataset gives, ``saliency`` the cached ``[1, h, w]`` float32 map
    (a random map until the item's first update) and ``index`` the item's position, so a training loop
    can write new maps back with ``cache.update(index, maps)``.

    Example:
        >>> base = [(torch.zeros(3, 4, 4), 0), (torch.ones(3, 4, 4), 1)]
        >>> data = SaliencyDataset(base, SaliencyCache(2, size=(2, 2)), return_index=True)
        >>> image, saliency, label, index = data[1]
        >>> saliency.shape, label, index
        (torch.Size([1, 2, 2]), 1, 1)
    """

    def __init__(self, dataset: Dataset, cache: SaliencyCache, return_index: bool = False) -> None:
        if len(dataset) != len(cache):
            raise ValueError(f"the dataset has {len(dataset)} items but the cache {len(cache)}")
        self.dataset = dataset
        self.cache = cache
        self.return_index = return_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        item = self.dataset[index]
        image, label = item[0], item[1]
        saliency = self.cache.get(index)
        return (image, saliency, label, index) if self.return_index else (image, saliency, label)
