"""Two gloo processes under ``torchrun`` mean the same as one process on the global batch.

One ``torchrun --nproc_per_node=2`` launch (``distributed_worker.py``) computes gathered
losses over uneven row counts, trains every method on its share of the global batches, and
runs an interrupted-then-resumed training beside an uninterrupted one; the tests here compare
with one process (the oracle: the same code on all rows, no process group).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import distributed_worker as worker
import pytest
import torch

from explainaug.distributed import gather_no_grad, gather_sizes, per_process_batch_size
from explainaug.losses import ExConLoss, SupConLoss
from explainaug.train import ExCon, SupCon


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("torchrun")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={worker.WORLD}",
        str(Path(worker.__file__)),
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(worker.WORLD)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, loss_fn, extra",
    [
        ("supcon_loss", SupConLoss(0.5, 0.07), ()),
        ("excon_loss", ExConLoss(0.5, 0.07), (worker.BACKGROUND,)),
    ],
)
def test_gathered_losses_over_uneven_rows_average_to_the_one_process_loss(
    ranks, name, loss_fn, extra
) -> None:
    features, labels = worker.loss_rows()
    whole = features.clone().requires_grad_()
    expected = loss_fn(whole, labels, *extra)
    expected.backward()
    # DDP averages over processes: the mean of the process losses is the loss on all rows, and
    # each process's gradient divided by the world size is the slice of the global gradient.
    mean = sum(rank[name][0] for rank in ranks) / worker.WORLD
    torch.testing.assert_close(mean, expected.detach())
    grads = torch.cat([rank[name][1] for rank in ranks]) / worker.WORLD
    assert [rank[name][1].shape[0] for rank in ranks] == list(worker.ROW_SIZES)
    torch.testing.assert_close(grads, whole.grad)


@pytest.mark.slow
@pytest.mark.parametrize("kind", worker.KINDS)
def test_ddp_steps_equal_one_process_steps_on_the_global_batch(ranks, kind) -> None:
    if kind == "excon":  # background negatives on, and their counts differ between processes
        assert [rank["excon_background_rows"] for rank in ranks] == [1, 4]
    single = worker.fit(kind, worker.batches())
    initial = worker.build(kind)[0].state_dict()
    for key, value in single.items():
        assert not torch.equal(value, initial[key]), f"{kind} {key} did not train"
        for rank in ranks:
            torch.testing.assert_close(
                rank[kind][key], value, rtol=1e-5, atol=1e-6, msg=f"{kind} {key}"
            )


@pytest.mark.slow
def test_a_run_resumed_under_torchrun_equals_the_uninterrupted_run(ranks) -> None:
    initial = worker.build("excon")[0].state_dict()
    for rank in ranks:
        for key, value in rank["uninterrupted"].items():
            assert not torch.equal(value, initial[key]), key
            torch.testing.assert_close(rank["resumed"][key], value, rtol=0, atol=0, msg=key)
            torch.testing.assert_close(ranks[0]["uninterrupted"][key], value, rtol=0, atol=0)
    # the epoch it resumed in logs the metrics of every process's steps, as uninterrupted
    for rank in ranks:
        assert len(rank["resumed_history"]) == 2
        for resumed, whole in zip(
            rank["resumed_history"], rank["uninterrupted_history"], strict=True
        ):
            for key in ("loss", "contrastive_loss", "masked_kept"):
                assert resumed.get(key) == whole.get(key), (resumed["epoch"], key)


def test_batch_size_is_the_global_batch_split_evenly() -> None:
    assert per_process_batch_size(256, 1) == 256
    assert per_process_batch_size(256, 4) == 64
    with pytest.raises(ValueError, match="global batch.*multiple of 4, got 6"):
        per_process_batch_size(6, 4)


def test_without_a_process_group_gathering_is_the_identity() -> None:
    rows = torch.randn(3, 2)
    assert gather_sizes(rows) == [3]
    assert gather_no_grad(rows) is rows


def test_contrastive_methods_gather_by_default() -> None:
    assert SupCon().loss.gather_distributed and ExCon().loss.gather_distributed
    assert not SupCon(gather_distributed=False).loss.gather_distributed
    assert not ExCon(gather_distributed=False).loss.gather_distributed
    given = ExConLoss(gather_distributed=False)
    assert not ExCon(loss=given).loss.gather_distributed  # a given loss keeps its own
    with pytest.raises(ValueError, match="contradicts the given loss"):
        SupCon(loss=SupConLoss(gather_distributed=False), gather_distributed=True)
