"""The shortcut cue of shapes(): placement, colour statistics, defaults and bad values."""

import hashlib

import pytest
import torch

from explainaug.data import DeviceLoader, ImageTensorDataset, shapes
from explainaug.data.shapes import CUE_COLOURS, cue_size


def _digest(dataset: ImageTensorDataset) -> str:
    digest = hashlib.sha256()
    for tensor in (dataset.images, dataset.labels, dataset.masks):
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _cue_classes(dataset: ImageTensorDataset) -> torch.Tensor:
    """The class whose cue colour each image shows, read from the pixels under its cue mask."""
    side = cue_size(dataset.images.shape[-1])
    pixels = dataset.images.permute(0, 2, 3, 1)[dataset.cue_masks[:, 0]]  # [N * side^2, 3]
    colours = pixels.view(len(dataset), side * side, 3)
    assert (colours == colours[:, :1]).all()  # one flat colour per cue
    palette = (torch.tensor(CUE_COLOURS) * 255).round().to(torch.uint8)
    match = (colours[:, 0, None, :] == palette[None]).all(dim=2)  # [N, 6]
    assert (match.sum(dim=1) == 1).all()
    return match.int().argmax(dim=1)


def test_default_is_todays_data_bit_for_bit() -> None:
    # Digests of shapes() before the cue existed (commit d93ab21); 1100 images span two chunks.
    old = {
        "f3a82c92281e38317b27719eeedf47061af1a66879f04d09ed768f9bbeb1580c": dict(
            n=1100, size=32, seed=3
        ),
        "fdc3ca34b74fda657a89017b55b8cc0671e4152949cc4e1c4b46ef7b995e3b15": dict(
            n=50, size=16, num_classes=6, split="test", seed=1
        ),
    }
    for digest, kwargs in old.items():
        dataset = shapes(**kwargs)
        assert _digest(dataset) == digest
        assert dataset.cue_masks is None
        assert _digest(shapes(**kwargs, cue_correlation=None)) == digest


@pytest.mark.parametrize(("size", "num_classes", "n"), [(32, 4, 1100), (16, 6, 300), (20, 2, 200)])
def test_cues_are_squares_that_never_overlap_the_object(size, num_classes, n) -> None:
    data = shapes(n=n, size=size, num_classes=num_classes, cue_correlation=0.5, seed=2)
    side = cue_size(size)
    cues = data.cue_masks[:, 0]
    assert cues.dtype == torch.bool and cues.shape == (n, size, size)
    assert not (cues & data.masks[:, 0]).any()
    assert (cues.flatten(1).sum(dim=1) == side * side).all()
    rows, cols = cues.any(dim=2), cues.any(dim=1)  # a side x side square: side rows and columns
    assert (rows.sum(dim=1) == side).all() and (cols.sum(dim=1) == side).all()
    # positions vary: the cue is not parked in one place
    assert (
        len(
            {
                tuple(r.nonzero()[0].tolist() + c.nonzero()[0].tolist())
                for r, c in zip(rows, cols, strict=True)
            }
        )
        > n // 4
    )


def test_cue_colour_follows_the_correlation() -> None:
    n, k = 2000, 4
    aligned = shapes(n=n, cue_correlation=1.0, seed=1)
    conflicting = shapes(n=n, cue_correlation=0.0, seed=1)
    mixed = shapes(n=n, cue_correlation=0.7, seed=1)
    assert torch.equal(_cue_classes(aligned), aligned.labels)
    other = _cue_classes(conflicting)
    assert not (other == conflicting.labels).any()
    # the other class is uniform over the k - 1 others: each pair (label, cue) near n / k / 3
    pairs = torch.bincount(conflicting.labels * k + other, minlength=k * k).view(k, k)
    off_diagonal = pairs[~torch.eye(k, dtype=torch.bool)].float()
    expected = n / k / (k - 1)  # 166.7; binomial sd about 11.8
    assert (off_diagonal - expected).abs().max() < 5 * 11.8
    rate = float((_cue_classes(mixed) == mixed.labels).float().mean())
    assert rate == pytest.approx(0.7, abs=4 * (0.7 * 0.3 / n) ** 0.5)


def test_cues_change_only_the_cue_pixels() -> None:
    plain = shapes(n=300, size=24, seed=4)
    for p in (0.0, 0.3, 1.0):
        cued = shapes(n=300, size=24, seed=4, cue_correlation=p)
        assert torch.equal(cued.labels, plain.labels) and torch.equal(cued.masks, plain.masks)
        changed = (cued.images != plain.images).any(dim=1, keepdim=True)
        assert not (changed & ~cued.cue_masks).any()
    # aligned and conflicting test sets differ only in the cues' colours
    a = shapes(n=300, size=24, seed=4, split="test", cue_correlation=1.0)
    c = shapes(n=300, size=24, seed=4, split="test", cue_correlation=0.0)
    assert torch.equal(a.cue_masks, c.cue_masks)
    assert ((a.images != c.images).any(dim=1, keepdim=True) == a.cue_masks).all()


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), float("inf")])
def test_cue_correlation_outside_unit_interval_is_rejected(p) -> None:
    with pytest.raises(ValueError, match=r"cue_correlation must lie in \[0, 1\]"):
        shapes(n=8, size=16, cue_correlation=p)


def test_cue_correlation_must_be_a_number() -> None:
    with pytest.raises(TypeError, match="cue_correlation must be a number, got str"):
        shapes(n=8, size=16, cue_correlation="0.5")


def test_device_loader_hands_out_cue_masks_on_request() -> None:
    data = shapes(n=10, size=16, cue_correlation=1.0)
    x, y, masks, cues = next(
        iter(DeviceLoader(data, 4, shuffle=False, device="cpu", cue_masks=True))
    )
    assert torch.equal(cues, data.cue_masks[:4]) and torch.equal(masks, data.masks[:4])
    assert len(next(iter(DeviceLoader(data, 4, device="cpu")))) == 3  # default unchanged
    with pytest.raises(ValueError, match="cue_masks=True needs a dataset with object and cue"):
        DeviceLoader(shapes(n=10, size=16), 4, device="cpu", cue_masks=True)


def test_dataset_checks_cue_masks() -> None:
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"cue_masks must be bool \[2, 1, 4, 4\]"):
        ImageTensorDataset(images, torch.arange(2), cue_masks=torch.zeros(2, 1, 4, 4))
    assert "cue masks" in repr(shapes(n=4, size=16, cue_correlation=0.5))
