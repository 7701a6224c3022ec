"""Fuzzing the paths a user takes with bad input: checkpoints, command lines and tensors.

Every case either gives a finite result of the documented shape, or raises ValueError/TypeError
with a message (the CLI: exits with code 2 and a one-line error). Never another exception type,
a traceback, or a silent NaN. Examples are bounded (derandomized, no deadline) to keep
`make test` fast.
"""

import io
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explainaug.augment import RandomOcclusion, SaliencyMask, SaliencyOcclusion, supcon_views
from explainaug.cli import main
from explainaug.explain import build_explainer
from explainaug.losses import EDDALoss, ExConLoss, SupConLoss
from explainaug.models import SmallCNN
from explainaug.registry import EXPLAINERS
from explainaug.train.checkpoint import load_checkpoint

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def expect_clean(call):
    """Run ``call``; return its result, or None when it raised ValueError/TypeError with a
    one-line message. Any other exception fails the test."""
    try:
        return call()
    except (ValueError, TypeError) as error:
        message = str(error)
        assert message and "\n" not in message.strip(), repr(message)
        return None


def assert_finite(result: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(result.shape) == shape
    assert bool(torch.isfinite(result).all()), "a silent NaN or inf"


# ------------------------------------------------------------------------------- checkpoints


def real_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": SmallCNN(3, width=4).state_dict(), "epoch": 1}, buffer)
    return buffer.getvalue()


REAL = real_checkpoint()


@st.composite
def checkpoint_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "flipped"]))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    if kind == "truncated":
        return REAL[: draw(st.integers(0, len(REAL) - 1))]
    data = bytearray(REAL)
    for position in draw(st.lists(st.integers(0, len(REAL) - 1), min_size=1, max_size=16)):
        data[position] ^= 0xFF
    return bytes(data)


@FUZZ
@given(data=checkpoint_bytes())
def test_random_bytes_as_checkpoints(data, tmp_path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(data)
    try:
        state = load_checkpoint(path, required=("model", "epoch"))
    except ValueError as error:
        message = str(error)
        assert str(path) in message and "\n" not in message
        assert "weights_only=False" not in message.replace(" ", "")
    else:  # flipped bytes inside stored tensor data still load: the structure is intact
        assert set(state) == {"model", "epoch"}
    assert zipfile.is_zipfile(io.BytesIO(REAL))


# ------------------------------------------------------------------------------ command line

TINY = ["--train-size", "16", "--image-size", "16", "--width", "4", "--epochs", "1"]
TINY += ["--batch-size", "8", "--device", "cpu", "--no-progress", "--amp", "none"]
INT_FLAGS = [
    "--width",
    "--epochs",
    "--batch-size",
    "--lr-warmup-epochs",
    "--explain-warmup-epochs",
    "--linear-epochs",
    "--seed",
    "--train-size",
    "--image-size",
]
FLOAT_FLAGS = [
    "--lr",
    "--weight-decay",
    "--temperature",
    "--view-min-scale",
    "--occlusion-ratio",
    "--linear-lr",
]
NAME_FLAGS = [
    "--method",
    "--dataset",
    "--model",
    "--explainer",
    "--salient-target",
    "--amp",
    "--device",
    "--cam-layer",
]
BAD_INTS = ["-1", "0", "-100", "1.5", "x", "", "nan"]
BAD_FLOATS = ["nan", "inf", "-inf", "-1", "0", "1e30", "-1e30", "x", ""]
BAD_NAMES = ["", "x", "CE", "gradcam ", "../..", "cuda:99", "tpu", "nonexistent.layer"]


@st.composite
def bad_train_arguments(draw) -> list[str]:
    """One to three documented flags, each with an out-of-domain value."""
    flags = draw(
        st.lists(st.sampled_from(INT_FLAGS + FLOAT_FLAGS + NAME_FLAGS), min_size=1, max_size=3)
    )
    argv = []
    for flag in flags:
        values = BAD_INTS if flag in INT_FLAGS else BAD_FLOATS if flag in FLOAT_FLAGS else BAD_NAMES
        argv += [flag, draw(st.sampled_from(values))]
    return argv


def run_cli(argv, capsys) -> tuple[int, str]:
    """Run the command in process; return the exit code and stderr. Exceptions propagate."""
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


@pytest.mark.slow
@FUZZ
@given(bad=bad_train_arguments())
def test_train_with_out_of_domain_values(bad, tmp_path_factory, capsys) -> None:
    out = tmp_path_factory.mktemp("fuzz") / "run"
    code, err = run_cli(["train", *TINY, "--out", str(out), *bad], capsys)
    if code == 0:  # the value was valid after all, or unused (--cam-layer for ce): it trained
        return
    assert code == 2, (bad, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("explainaug train: error:"), err


EVALUATE_BAD = {
    "--eps": BAD_FLOATS,
    "--severities": BAD_INTS + ["6"],
    "--corruptions": ["", "x", "fog,", "all,none"],
    "--explainer": BAD_NAMES,
    "--evaluators": ["", "x"],
    "--device": BAD_NAMES,
    "--data": ["/nonexistent"],
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("evaluate") / "run"
    assert main(["train", *TINY, "--out", str(run_dir)]) == 0
    return run_dir


@pytest.mark.slow
@settings(FUZZ, max_examples=12)
@given(
    flags=st.lists(st.sampled_from(sorted(EVALUATE_BAD)), min_size=1, max_size=2), data=st.data()
)
def test_evaluate_with_out_of_domain_values(
    flags, data, tiny_run, tmp_path_factory, capsys
) -> None:
    bad = []
    for flag in flags:
        bad += [flag, data.draw(st.sampled_from(EVALUATE_BAD[flag]))]
    out = tmp_path_factory.mktemp("report")
    evaluators = {
        "--eps": "robustness",
        "--severities": "calibration",
        "--corruptions": "calibration",
    }
    evaluators["--explainer"] = "faithfulness"  # the evaluators that read the fuzzed values
    chosen = sorted({"accuracy", *(evaluators[flag] for flag in flags if flag in evaluators)})
    argv = ["evaluate", str(tiny_run), "--evaluators", *chosen, "--out", str(out)]
    code, err = run_cli([*argv, "--device", "cpu", *bad], capsys)
    if code == 0:  # the bad value was not used (e.g. --data for shapes): nothing else to check
        return
    assert code == 2, (bad, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("explainaug evaluate: error:"), err


# ------------------------------------------------------------------------------------ tensors

DTYPES = [torch.float32, torch.float64, torch.float16, torch.uint8, torch.int64, torch.bool]
SPECIAL = [float("nan"), float("inf"), -float("inf"), -1.0, 1e30, -1e30, 0.0, 1.0]


@st.composite
def tensors(draw, shape: tuple[int, ...] | None = None, max_side: int = 8) -> torch.Tensor:
    """Tensors of any dtype, with NaN, inf, negative, huge or ordinary values."""
    if shape is None:
        rank = draw(st.integers(0, 5))
        shape = tuple(draw(st.integers(0, max_side)) for _ in range(rank))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    values = torch.rand(shape, generator=generator, dtype=torch.float64)
    if values.numel():
        kind = draw(st.sampled_from(["unit", "scaled", "special"]))
        if kind == "scaled":
            values = values * draw(st.sampled_from([-1.0, 255.0, 1e6, 1e-30]))
        elif kind == "special":
            mask = torch.rand(shape, generator=generator) < 0.3
            values = values.masked_fill(mask, draw(st.sampled_from(SPECIAL)))
    dtype = draw(st.sampled_from(DTYPES))
    if not dtype.is_floating_point and dtype != torch.bool:
        values = torch.nan_to_num(values, posinf=0.0, neginf=0.0).clamp(-1e6, 1e6)
    return values.to(dtype)


@st.composite
def images(draw) -> torch.Tensor:
    """Image-like tensors: usually [B, C, H, W] with B in 0..3, sometimes any shape."""
    if draw(st.booleans()):
        return draw(tensors())
    shape = (
        draw(st.integers(0, 3)),
        draw(st.sampled_from([1, 3])),
        draw(st.integers(1, 8)),
        draw(st.integers(1, 8)),
    )
    return draw(tensors(shape=shape))


TRANSFORMS = {
    "mask": lambda: SaliencyMask(threshold=0.5, fill="mean"),
    "occlusion": lambda: SaliencyOcclusion(region="nonsalient", ratio=0.3, fill="blur"),
    "random": lambda: RandomOcclusion(ratio=0.3, fill="noise"),
}


@FUZZ
@given(name=st.sampled_from(sorted(TRANSFORMS)), x=images(), maps=tensors(), data=st.data())
def test_transforms(name, x, maps, data) -> None:
    if data.draw(st.booleans()) and x.ndim == 4:  # maps of the right shape, fuzzed values
        maps = data.draw(tensors(shape=(x.shape[0], 1, 4, 4)))
    transform = TRANSFORMS[name]()
    result = expect_clean(lambda: transform(x) if name == "random" else transform(x, maps))
    if result is not None:
        assert_finite(result, tuple(x.shape) if x.ndim == 4 else (1, *x.shape))
        assert result.min() >= 0 and result.max() <= 1


@FUZZ
@given(x=images())
def test_supcon_views(x) -> None:
    result = expect_clean(lambda: supcon_views(6, n_views=2)(x))
    if result is not None:
        shape = (x.shape[0], 2, x.shape[1], 6, 6) if x.ndim == 4 else (2, x.shape[0], 6, 6)
        assert_finite(result, shape)


@st.composite
def labels_for(draw, batch: int) -> torch.Tensor:
    if draw(st.booleans()):
        return torch.tensor(draw(st.lists(st.integers(0, 2), min_size=batch, max_size=batch)))
    return draw(tensors(shape=(batch,)))


@FUZZ
@given(data=st.data())
def test_losses(data) -> None:
    features = data.draw(st.one_of(tensors(), tensors(shape=(4, 2, 8))))
    batch = features.shape[0] if features.ndim else 0
    labels = data.draw(labels_for(batch))
    background = data.draw(st.one_of(tensors(shape=features.shape[:2]), st.just(None)))
    if background is None and features.ndim >= 2:
        background = torch.zeros(features.shape[:2], dtype=torch.bool)
    for loss in (
        lambda: SupConLoss(temperature=0.1)(features, labels),
        lambda: ExConLoss(temperature=0.1)(features, labels, background),
    ):
        result = expect_clean(loss)
        if result is not None:
            assert_finite(result, ())
    logits = [data.draw(st.one_of(tensors(), tensors(shape=(4, 3)))) for _ in range(3)]
    result = expect_clean(lambda: EDDALoss()(*logits, labels))
    if result is not None:
        assert_finite(result, ())


MODEL = SmallCNN(num_classes=3, width=4).eval()


@FUZZ
@given(name=st.sampled_from(EXPLAINERS.names()), data=st.data())
def test_explainers(name, data) -> None:
    side = data.draw(st.sampled_from([4, 16]))  # SmallCNN pools twice: at least 4 pixels
    x = data.draw(  # the model's 3 channels (another count is the model's error, not ours)
        st.one_of(
            tensors(shape=(data.draw(st.integers(0, 2)), 3, side, side)),
            tensors(max_side=4).filter(lambda t: t.ndim != 4),
        )
    )
    target = data.draw(
        st.one_of(st.none(), st.integers(-2, 4), labels_for(x.shape[0] if x.ndim else 0))
    )
    options = {"n_steps": 4} if name in ("integratedgradients", "integratedgradcam") else {}
    if name == "smoothgrad":
        options = {"nt_samples": 2}
    explainer = build_explainer(name, MODEL, **options)
    result = expect_clean(lambda: explainer(x, target))
    if result is not None:
        assert_finite(result, (x.shape[0], 1, *x.shape[-2:]))
        assert result.min() >= 0
