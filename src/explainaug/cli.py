"""The ``explainaug`` command: ``demo``, ``train`` and ``evaluate``.

Examples::

    explainaug demo                                  # all methods on the shipped shapes data
    explainaug train --method excon --dataset digits --epochs 30 --out runs/excon
    explainaug evaluate runs/excon --evaluators accuracy calibration --out runs/excon/report
    explainaug train --dataset shapes --cue-correlation 0.95 --out runs/cued
    explainaug evaluate runs/cued --evaluators accuracy shortcut   # cue-aligned vs conflicting
    torchrun --nproc_per_node=4 -m explainaug.cli train --dataset cifar100 --data /data ...
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from explainaug import __version__
from explainaug.catalog import EVALUATORS, OPTIONAL_EVALUATORS, dataset_names

if TYPE_CHECKING:  # torch-heavy modules are imported where used, so that help starts fast
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from explainaug.settings import Experiment

TRAIN_DESCRIPTION = (
    "Train one method on one dataset; write to --out the checkpoint (checkpoint.pt), the "
    "settings (run.json), per-epoch metrics (metrics.jsonl, metrics.csv), the final test "
    "accuracy (results.json) and the final weights (model.pt). Works under torchrun."
)
DEVICE_HELP = "cuda, cuda:1 or cpu (default: cuda if any, else cpu)"
EVALUATE_DESCRIPTION = (
    "Evaluate a trained run (folder or checkpoint) and write report.md, report.json and figures."
)


def train_main(
    argv: Sequence[str] | None = None,
    defaults: Experiment | None = None,
    prog: str = "explainaug train",
    description: str | None = None,
) -> int:
    """Parse training options (``defaults`` give their default values), train, print accuracy.

    Shared by ``explainaug train`` and the recipes in ``recipes/``. Works under ``torchrun``,
    where rank 0 alone prints the summary. Bad settings, devices or output folders exit with
    code 2 and one line on stderr.
    """
    from explainaug.settings import Experiment, add_experiment_arguments, experiment_from_args

    parser = argparse.ArgumentParser(
        prog=prog,
        description=plain_text(description or TRAIN_DESCRIPTION),
        formatter_class=HelpFormatter,
    )
    add_experiment_arguments(parser, defaults or Experiment())
    _add_run_arguments(parser)
    args = parser.parse_args(argv)
    _log_to_console()
    experiment = experiment_from_args(args)
    from explainaug.models.adapt import ModelOutputError

    try:
        from explainaug._validation import check_device
        from explainaug.distributed import rank
        from explainaug.experiment import run

        experiment.validate()
        device = None if args.device is None else check_device(args.device)
        result = run(
            experiment,
            out_dir=args.out,
            resume=args.resume,
            device=device,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except (
        FileNotFoundError,
        ValueError,
        ModelOutputError,
        FloatingPointError,
        ImportError,
    ) as error:
        # ModelOutputError: a model with several outputs and no --model-output;
        # FloatingPointError: the loss diverged, from settings such as --lr 1e30;
        # ImportError: an optional extra (timm, tensorboard) is missing, the message says how
        # to install it
        message = in_flags(str(error))
        parser.exit(2, f"{prog}: error: {message}{_defaults_note(message, parser, argv)}\n")
    if result.interrupted:
        if rank() == 0:
            print(f"interrupted: checkpoint in {args.out}; resume with --resume auto")
        return 130
    if rank() == 0:
        print(
            f"{experiment.method} on {experiment.dataset}: test accuracy "
            f"{result.test_accuracy:.4f} (checkpoint and metrics in {args.out})"
        )
        if result.best_test_accuracy is not None:
            print(
                "best test accuracy over epochs (selected on the test set): "
                f"{result.best_test_accuracy:.4f}"
            )
    return 0


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/latest", help="folder for checkpoint and metrics")
    parser.add_argument(
        "--resume",
        default=None,
        help='checkpoint to resume from, or "auto" for OUT/checkpoint.pt if present',
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in --out (its checkpoint, metrics, weights and report)",
    )
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """Evaluate a trained run (folder or checkpoint) and write a report."""
    parser = argparse.ArgumentParser(
        prog="explainaug evaluate",
        description=plain_text(EVALUATE_DESCRIPTION),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("run", help="run folder (with checkpoint.pt and run.json) or checkpoint")
    parser.add_argument(
        "--evaluators",
        nargs="+",
        default=None,
        choices=EVALUATORS + OPTIONAL_EVALUATORS,
        help="evaluators to run (default: all but shortcut, which needs a shapes run, and "
        "localization where the data have no object masks)",
    )
    parser.add_argument(
        "--explainer",
        nargs="+",
        default=None,
        help="explainer(s) for the explanation evaluators (gradcam, scorecam, rise, ...; several "
        "are compared side by side), each with its own defaults on the run's CAM layer: "
        "--explainer gradcam gives every run the same ReLU'd Grad-CAM (default: the run's own, "
        "with the CAM layer and ReLU it trained with, see run.json; ExCon's has no ReLU)",
    )
    parser.add_argument("--corruptions", default="all", help='"all", "none" or comma-separated')
    parser.add_argument(
        "--severities",
        type=int,
        nargs="+",
        default=[1, 2, 3, 4, 5],
        choices=range(1, 6),
        metavar="S",
        help="corruption severities (1-5)",
    )
    parser.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=[2.0, 4.0, 8.0],
        help="L-inf attack budgets in 1/255 units (FGSM and PGD)",
    )
    parser.add_argument("--out", default=None, help="report folder (default: RUN/report)")
    parser.add_argument(
        "--data",
        default=None,
        help="dataset folder, if it moved since training (default: the run's)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        choices=dataset_names(),
        help="test data of a run trained from Python with Trainer, or to replace the run's "
        "(default: the run's)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image side for --dataset (folder, shapes) (default: the run's)",
    )
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    evaluators = list(args.evaluators or EVALUATORS)
    _log_to_console()
    from explainaug._validation import check_device
    from explainaug.data import DeviceLoader, make_loader
    from explainaug.evaluate.report import EXPLANATION_EVALUATORS, report
    from explainaug.experiment import (
        REPORT_DIR,
        explainer_options,
        load_run,
        load_shortcut_datasets,
        load_test_dataset,
    )

    try:
        eps = _attack_budgets(args.eps)
        corruptions = _corruption_names(args.corruptions)
        device = check_device(args.device) if args.device else _default_device()
        model, experiment = load_run(
            args.run,
            device=device,
            data_root=args.data,
            dataset=args.dataset,
            image_size=args.image_size,
        )
        test_set = load_test_dataset(experiment, device)
        _check_classes(model, test_set, experiment.dataset, device)
        cued_sets = load_shortcut_datasets(experiment) if "shortcut" in evaluators else ()
    except (FileNotFoundError, ValueError, ImportError) as error:  # ImportError: timm missing
        parser.exit(2, f"explainaug evaluate: error: {error}\n")
    if "localization" in evaluators and getattr(test_set, "masks", None) is None:
        if args.evaluators is not None:  # asked for by name
            parser.exit(
                2,
                f"explainaug evaluate: error: localization needs object masks; "
                f"{experiment.dataset} has none (use the shapes dataset)\n",
            )
        evaluators.remove("localization")
        print(
            f"skipped localization: dataset {experiment.dataset!r} has no object masks (shapes has)"
        )
    out = (
        Path(args.out)
        if args.out
        else Path(args.run if Path(args.run).is_dir() else Path(args.run).parent) / REPORT_DIR
    )
    loader = make_loader(test_set, 256, shuffle=False, device=device, rank=0, world_size=1)
    explainers = args.explainer or [experiment.explainer]
    explainer = explainers[0] if len(explainers) == 1 else explainers
    # By default the run's own explainer: its layer and ReLU as it trained. Named explainers
    # keep their own defaults (Grad-CAM with ReLU) on the run's CAM layer.
    options = explainer_options(experiment) if args.explainer is None else {}
    shortcut_loaders = tuple(
        DeviceLoader(cued, 256, shuffle=False, device=device, cue_masks=True) for cued in cued_sets
    )
    try:
        if isinstance(explainer, str) and set(evaluators) & set(EXPLANATION_EVALUATORS):
            # the report names the CAM layer a default resolves to
            image = test_set[0][0][None].to(device)
            options = _with_resolved_layer(explainer, options, model, image)
        results = report(
            {experiment.method: model},
            loader,
            out,
            evaluators=evaluators,
            explainer_factory=explainer,
            explainer_options=options,
            corruptions=corruptions,
            severities=args.severities,
            attack=("fgsm", "pgd"),
            eps=eps,
            shortcut_loaders=shortcut_loaders or None,
            progress=not args.no_progress,
        )
    except ValueError as error:  # bad names or values given on the command line
        parser.exit(2, f"explainaug evaluate: error: {error}\n")
    print(f"report written to {out} ({', '.join(results['figures']) or 'no figures'})")
    return 0


def _with_resolved_layer(
    name: str, options: dict[str, object], model: nn.Module, image: torch.Tensor
) -> dict[str, object]:
    """``options`` with ``layer`` set to the CAM layer explainer ``name`` uses on ``image``
    (the model's default, checked by the explainer's probe: no explanation runs) when none is
    given, and Grad-CAM's ``relu`` stated: the report then names what it explains with."""
    from explainaug.catalog import LAYER_EXPLAINERS
    from explainaug.explain import build_explainer

    if name.lower() not in LAYER_EXPLAINERS or options.get("layer") is not None:
        return options
    explainer = build_explainer(name, model, **options)
    cam = getattr(explainer, "gradcam", explainer)  # GuidedGradCAM explains through its Grad-CAM
    resolved = {**options, "layer": cam.layer_for(image)}
    if name.lower() == "gradcam":
        resolved["relu"] = explainer.relu
    return resolved


def _attack_budgets(eps: Sequence[float]) -> list[float]:
    """The ``--eps`` budgets (1/255 units) as L-inf radii in [0, 1] pixels.

    Example:
        >>> _attack_budgets([0, 255])
        [0.0, 1.0]
    """
    bad = [value for value in eps if not 0 <= value < math.inf]
    if bad:
        raise ValueError(f"--eps takes finite budgets >= 0 in 1/255 units, got {bad[0]}")
    return [value / 255 for value in eps]


def _corruption_names(value: str) -> str | list[str] | None:
    """``--corruptions`` (``all``, ``none`` or comma-separated names) as ``report`` takes it.

    Example:
        >>> _corruption_names("fog,contrast"), _corruption_names("none")
        (['fog', 'contrast'], None)
    """
    from explainaug.data.corruptions import CORRUPTIONS

    if value in ("all", "none"):
        return None if value == "none" else value
    names = value.split(",")
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown:
        raise ValueError(
            f"unknown corruption {unknown[0]!r} in --corruptions; give all, none or "
            f"comma-separated names from {', '.join(CORRUPTIONS)}"
        )
    return names


def _check_classes(
    model: nn.Module, test_set: Dataset, dataset: str, device: str | torch.device
) -> None:
    """Refuse test data whose class count differs from the model's outputs (its labels would
    name other classes), before any evaluation starts."""
    import torch

    with torch.no_grad():
        outputs = model(test_set[0][0][None].to(device)).shape[-1]
    if outputs != test_set.num_classes:
        raise ValueError(
            f"the run has {outputs} classes but dataset {dataset!r} has "
            f"{test_set.num_classes}; evaluate it on data with the run's classes"
        )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default in its help, once: a help that states its own ``(default: ...)``
    gets none added. The description keeps its paragraphs and examples."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(default:" in action.help:
            return action.help
        return super()._get_help_string(action)


def _defaults_note(
    message: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> str:
    """A note on the flags ``message`` names that the command line did not give: their value is
    this command's default (a recipe's, say), which the user may not know they are using."""
    unset = object()
    actions = {option: action for action in parser._actions for option in action.option_strings}
    # argparse leaves a destination already in the namespace alone unless the command line sets
    # it: so a sentinel left there marks a flag not given (abbreviated and --no- forms count)
    seen = parser.parse_args(argv, argparse.Namespace(**{a.dest: unset for a in parser._actions}))
    notes = []
    for flag in dict.fromkeys(re.findall(r"--[a-z][\w-]*", message)):
        action = actions.get(flag)
        if action is None or action.default is None or getattr(seen, action.dest) is not unset:
            continue
        notes.append(f"{flag} was not given: {action.default} is this command's default")
    return f" ({'; '.join(notes)})" if notes else ""


def in_flags(message: str) -> str:
    """``message`` with each ``Experiment`` field of two or more words (``batch_size``) written as
    its command-line flag (``--batch-size``); one-word names are the flags' own words already.

    Example:
        >>> in_flags("explain_warmup_epochs must be an int in [0, 1], got 50")
        '--explain-warmup-epochs must be an int in [0, 1], got 50'
        >>> in_flags("cannot read /runs/batch_size/a.pt or 'image_size'")
        "cannot read /runs/batch_size/a.pt or 'image_size'"
    """
    from explainaug.settings import Experiment, field_flag

    names = [field.name for field in dataclasses.fields(Experiment) if "_" in field.name]
    # a name on its own: not part of a path, a file name, a quoted value or a longer word
    pattern = r"(?<![\w./'\"-])(" + "|".join(names) + r")(?![\w./'\"-])"
    return re.sub(pattern, lambda match: field_flag(match[1]), message)


def plain_text(docstring: str, width: int = 79) -> str:
    r"""A docstring as help text: RST markup removed (double backticks, ``::``, roles such as
    ``:func:`name```), prose paragraphs refilled to ``width``, indented blocks kept as written.

    Example:
        >>> print(plain_text("Use ``--lr`` with :func:`run`. Examples::\n\n    run --lr 1"))
        Use --lr with run. Examples:
        <BLANKLINE>
            run --lr 1
    """
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", textwrap.dedent(docstring).strip().replace("``", ""))
    paragraphs = []
    for paragraph in text.replace("::", ":").split("\n\n"):
        indented = paragraph.startswith(" ")
        paragraphs.append(
            paragraph if indented else textwrap.fill(" ".join(paragraph.split()), width)
        )
    return "\n\n".join(paragraphs)


def _log_to_console() -> None:
    """Show the package's INFO messages (data placement, ...) on the current stderr."""
    logger = logging.getLogger("explainaug")
    for handler in logger.handlers:
        if getattr(handler, "explainaug_console", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.explainaug_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


COMMANDS = {  # name: one-line description for `explainaug --help`
    "demo": "train and evaluate every method on data shipped with the install",
    "train": "train one method on one dataset (checkpoint, metrics and run.json in --out)",
    "evaluate": "evaluate a trained run: accuracy, calibration, robustness, explanations",
}
USAGE = "usage: explainaug [-h] [--version] {demo,train,evaluate} [options]"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``explainaug`` command: dispatch to a command, or print help/version.

    Example:
        >>> main(["--version"])
        explainaug 0.1.0
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"{USAGE}\n\nExplanation-aware training of image classifiers.\n\ncommands:")
        for name, description in COMMANDS.items():
            print(f"  {name:<10}{description}")
        print("\noptions:\n  -h, --help  show this help (explainaug COMMAND -h: a command's help)")
        print("  --version   print the version")
        return 0
    if argv[0] == "--version":
        print(f"explainaug {__version__}")
        return 0
    commands = {"train": train_main, "evaluate": evaluate_main, "demo": _demo_main}
    if argv[0] not in commands:
        print(USAGE, file=sys.stderr)
        print(
            f"explainaug: error: unknown command {argv[0]!r} (choose from demo, train, evaluate)",
            file=sys.stderr,
        )
        return 2
    return commands[argv[0]](argv[1:])


def _demo_main(argv: Sequence[str]) -> int:
    from explainaug.demo import demo_main

    return demo_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
