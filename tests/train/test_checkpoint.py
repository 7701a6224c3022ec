"""Atomic writes, weights-only loading and clear errors for bad checkpoint files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from explainaug.train import load_checkpoint, save_checkpoint
from explainaug.train.checkpoint import capture_rng_state, restore_rng_state


def test_round_trip_is_weights_only(tmp_path):
    state = {"w": torch.arange(3.0), "nested": {"n": 2, "items": [1.5, None, "x"]}}
    path = save_checkpoint(state, tmp_path / "sub" / "ckpt.pt")
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["w"], state["w"]) and loaded["nested"] == state["nested"]


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"w": torch.zeros(2)}, path)

    def broken_save(obj, file):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"w": torch.ones(2)}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert torch.equal(load_checkpoint(path, required=("w",))["w"], torch.zeros(2))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)


def test_truncated_file(tmp_path):
    path = save_checkpoint({"w": torch.randn(1000)}, tmp_path / "ckpt.pt")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path, required=("w",))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": object()}, path)
    with pytest.raises(ValueError, match="weights-only"):
        load_checkpoint(path, required=("model",))


def test_missing_keys(tmp_path):
    path = save_checkpoint({"model": {}}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="lacks the keys"):
        load_checkpoint(path)


def test_rng_state_round_trip_through_a_file(tmp_path):
    path = save_checkpoint({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(load_checkpoint(path, required=("rng",))["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
