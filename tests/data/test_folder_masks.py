"""Mask folders beside an image folder: same relative paths, any format, resized with the
image; a missing or wrongly sized mask is a one-line error naming the file, before training."""

import numpy as np
import pytest
import torch
from PIL import Image

from explainaug.cli import main
from explainaug.data import ImageFileDataset, ImageTensorDataset, fit_image, image_folder
from explainaug.data.image_folder import folder_split

FORMATS = (".png", ".bmp", ".tif")


def _write_masks(root, masks_root, seed=0):
    """One mask per image (formats rotating): a random rectangle, the image's size."""
    rng = np.random.default_rng(seed)
    drawn = {}
    for i, image_path in enumerate(sorted(root.rglob("*.png"))):
        with Image.open(image_path) as image:
            width, height = image.size
        array = np.zeros((height, width), dtype=np.uint8)
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        array[top : top + height // 2, left : left + width // 2] = 255
        target = masks_root / image_path.relative_to(root).with_suffix(FORMATS[i % 3])
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(target)
        drawn[image_path] = array
    return drawn


@pytest.mark.parametrize("lazy", [False, True])
def test_masks_are_read_in_any_format_and_resized_with_their_images(
    tmp_path, write_image_folder, lazy
) -> None:
    root = write_image_folder(tmp_path / "data")
    drawn = _write_masks(root, tmp_path / "masks")
    _write_masks(root, tmp_path / "cues", seed=1)
    data = image_folder(
        root, "train", 12, lazy=lazy, masks=tmp_path / "masks", cue_masks=tmp_path / "cues"
    )
    paths = folder_split(root, "train")[0]
    expected = torch.stack(
        [fit_image(torch.from_numpy(drawn[path])[None], (12, 12)) > 127 for path in paths]
    )
    if lazy:
        assert isinstance(data, ImageFileDataset)
        items = [data[i] for i in range(len(data))]
        assert torch.equal(torch.stack([item[2] for item in items]), expected)
        assert all(len(item) == 4 and item[3].dtype == torch.bool for item in items)
    else:
        assert isinstance(data, ImageTensorDataset)
        assert torch.equal(data.masks, expected)
        assert data.cue_masks is not None and not torch.equal(data.cue_masks, data.masks)
    assert 0 < expected.float().mean() < 1


def test_a_missing_mask_names_the_image_and_where_its_mask_should_be(
    tmp_path, write_image_folder
) -> None:
    root = write_image_folder(tmp_path / "data")
    _write_masks(root, tmp_path / "masks")
    victim = sorted((tmp_path / "masks" / "train").rglob("*.*"))[-1]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=f"no mask for image .*{victim.stem}"):
        image_folder(root, "train", 12, masks=tmp_path / "masks")


def test_a_wrongly_sized_mask_names_the_file(tmp_path, write_image_folder) -> None:
    root = write_image_folder(tmp_path / "data")
    _write_masks(root, tmp_path / "masks")
    victim = sorted((tmp_path / "masks" / "val").rglob("*.png"))[0]
    Image.fromarray(np.zeros((3, 5), dtype=np.uint8)).save(victim)
    with pytest.raises(ValueError, match=f"mask {victim} is 5x3 but its image"):
        image_folder(root, "test", 12, masks=tmp_path / "masks", lazy=True)


def test_train_with_folder_masks_and_a_missing_one_fails_before_training(
    tmp_path, write_image_folder, capsys
) -> None:
    root = write_image_folder(tmp_path / "data")
    _write_masks(root, tmp_path / "masks")
    args = ["train", "--dataset", "folder", "--data", str(root), "--masks", str(tmp_path / "masks")]
    args += ["--method", "hint", "--annotation", "object", "--epochs", "1", "--batch-size", "6"]
    args += ["--width", "4", "--image-size", "16", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert "hint on folder: test accuracy" in capsys.readouterr().out
    sorted((tmp_path / "masks" / "train").rglob("*.*"))[-1].unlink()
    assert main([*args, "--out", str(tmp_path / "run2")]) != 0
    err = capsys.readouterr().err.strip()
    assert "no mask for image" in err and len(err.splitlines()) == 1
    # the flag of the folder that lacks the mask, not --data
    assert f"--masks {tmp_path / 'masks'}: no mask for image" in err and "--data" not in err
    assert not (tmp_path / "run2" / "checkpoint.pt").exists()
