"""The ``explainaug`` command: ``demo``, ``train`` and ``evaluate`` (argparse subcommands).

Examples::

    explainaug demo                                  # all methods on the shipped shapes data
    explainaug train --method excon --dataset digits --epochs 30 --out runs/excon
    explainaug evaluate runs/excon --evaluators accuracy calibration --out runs/excon/report
    explainaug train --dataset shapes --cue-correlation 0.95 --out runs/cued
    explainaug evaluate runs/cued --evaluators accuracy shortcut   # cue-aligned vs conflicting
    torchrun --nproc_per_node=4 -m explainaug.cli train --dataset cifar100 --data /data ...

The train flags come from the settings' declarations (``explainaug.settings``): a bad value is
reported with the flag's name before torch is imported, so ``--help`` and typos answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import math
import re
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explainaug import __version__, demo
from explainaug.registry import DATASETS, EVALUATORS, EXPLAINERS, METHODS
from explainaug.settings import (
    Experiment,
    SettingError,
    flag,
    setting_type,
    settings_fields,
)

if TYPE_CHECKING:  # torch-heavy modules are imported where used, so that help starts fast
    import torch
    from torch import nn
    from torch.utils.data import Dataset

TRAIN_DESCRIPTION = (
    "Train one method on one dataset; write to --out the checkpoint (checkpoint.pt), the "
    "settings (run.json), per-epoch metrics (metrics.jsonl, metrics.csv), the final test "
    "accuracy (results.json) and the final weights (model.pt). Works under torchrun."
)
EVALUATE_DESCRIPTION = (
    "Evaluate a trained run (folder or checkpoint) and write report.md, report.json and figures."
)
DEVICE_HELP = "cuda, cuda:1 or cpu (default: cuda if any, else cpu)"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's paragraphs and examples as written."""


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


# ------------------------------------------------------------------ settings as flags


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


def _converter(kind: type, optional: bool) -> Callable[[str], Any]:
    """The argparse ``type`` of a setting: ``none`` (any case) gives None where it may be None."""

    def convert(text: str) -> Any:
        if optional and text.lower() in ("none", ""):
            return None
        return kind(text)

    convert.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return convert


def add_settings(parser: argparse.ArgumentParser, defaults: Experiment) -> None:
    """Add one flag per :class:`Experiment` setting, from its declaration: name, type, allowed
    values, help, and ``defaults``' value as the shown default. A flag not given stays out of
    the parsed namespace, so :func:`experiment_from_args` knows which settings were given.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_settings(parser, Experiment(method="edda"))
        >>> experiment_from_args(parser.parse_args(["--epochs", "3"]), Experiment()).epochs
        3
    """
    for name, declared in settings_fields().items():
        meta = declared.metadata
        kind, optional = setting_type(declared)
        default = getattr(defaults, name)
        text = f"{meta['help']} (default: {_shown(default)})".replace("%", "%%")
        options: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": text}
        if kind is not bool:
            options["metavar"] = flag(name)[2:].upper().replace("-", "_")
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = _converter(kind, optional)
            choices = meta["choices"]
            if choices is not None:
                allowed = tuple(choices() if callable(choices) else choices)
                options["choices"] = allowed
                options["metavar"] = "{" + ",".join(_shown(choice) for choice in allowed) + "}"
        parser.add_argument(flag(name), **options)


def experiment_from_args(args: argparse.Namespace, defaults: Experiment) -> Experiment:
    """``defaults`` with the settings given on the command line (see :func:`add_settings`)."""
    return dataclasses.replace(defaults, **given_settings(args))


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gave, by name."""
    return {name: value for name, value in vars(args).items() if name in settings_fields()}


def setting_message(error: Exception, args: argparse.Namespace, defaults: Experiment) -> str:
    """``error`` as the command line says it: a :class:`SettingError` names its flags, and every
    setting flag the message names that the command line did not give is noted with its
    default (a recipe's, say), which the user may not know they are using; a switch that is
    off by default is not (the message tells to give it).

    Example:
        >>> error = SettingError("explain_warmup_epochs", "must be <= {epochs}")
        >>> print(setting_message(error, argparse.Namespace(explain_warmup_epochs=50), Experiment()))
        --explain-warmup-epochs must be <= --epochs (--epochs was not given: 10 is this command's default)
    """
    message = error.render(flag) if isinstance(error, SettingError) else str(error)
    flags = {flag(name): name for name in settings_fields()}
    given = given_settings(args)
    notes = [
        f"{mentioned} was not given: "
        + ("it is on by default" if default is True else f"{default} is this command's default")
        for mentioned in dict.fromkeys(re.findall(r"--[a-z][\w-]*", message))
        if mentioned in flags
        and flags[mentioned] not in given
        and (default := getattr(defaults, flags[mentioned])) is not None
        and default is not False  # an off switch: the message says to give it
    ]
    return message + (f" ({'; '.join(notes)})" if notes else "")


# ------------------------------------------------------------------------------ train


def add_train_arguments(parser: argparse.ArgumentParser, defaults: Experiment) -> None:
    """The flags of ``explainaug train`` (and the recipes): the settings, then where and how."""
    add_settings(parser, defaults)
    parser.add_argument(
        "--out",
        default="runs/latest",
        help="folder for checkpoint and metrics (default: runs/latest)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        help='checkpoint to resume from, or "auto" for OUT/checkpoint.pt if present (default: a '
        "fresh run)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in --out (its checkpoint, metrics, weights and report) "
        "(default: refuse)",
    )
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (default: shown)"
    )
    parser.set_defaults(defaults=defaults)


def train_main(
    argv: Sequence[str] | None = None,
    defaults: Experiment | None = None,
    prog: str = "explainaug train",
    description: str | None = None,
) -> int:
    """Parse training options (``defaults`` give their default values), train, print accuracy.

    The entry of ``explainaug train`` and of the recipes in ``recipes/``. Works under
    ``torchrun``, where rank 0 alone prints the summary. Bad settings, devices or output
    folders exit with code 2 and one line on stderr.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=plain_text(description or TRAIN_DESCRIPTION),
        formatter_class=HelpFormatter,
    )
    add_train_arguments(parser, defaults or Experiment())
    return train_command(parser.parse_args(argv), parser)


def train_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Train the experiment the parsed flags describe (``explainaug train``)."""
    defaults: Experiment = args.defaults
    experiment = experiment_from_args(args, defaults)
    try:
        experiment.validate()
    except SettingError as error:
        parser.exit(2, f"{parser.prog}: error: {setting_message(error, args, defaults)}\n")
    _log_to_console()
    from explainaug.stopping import Stopped, stop_on_signals

    try:
        with stop_on_signals():
            return _train(experiment, args, parser)
    except Stopped as stop:  # before or after training: nothing to checkpoint
        print(
            f"stopped by {signal_name(stop.signum)} outside the training steps; run the "
            "command again (with --resume auto where --out holds a checkpoint.pt)"
        )
        return stop.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's checkpoint was pending
        print(f"stopped by a second Ctrl-C: {args.out} keeps its last checkpoint")
        return 128 + signal.SIGINT


def _train(
    experiment: Experiment, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
    """Run the validated ``experiment``; the exit code (128 + the signal when one stopped it)."""
    defaults: Experiment = args.defaults
    from explainaug._validation import check_device
    from explainaug.distributed import rank
    from explainaug.experiment import run
    from explainaug.models.adapt import ModelOutputError

    try:
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
        parser.exit(2, f"{parser.prog}: error: {setting_message(error, args, defaults)}\n")
    if result.interrupted:
        signum = result.stop_signal or signal.SIGINT
        if rank() == 0:
            print(
                f"stopped by {signal_name(signum)}: checkpoint in {args.out}; resume with the "
                "same command and --resume auto"
            )
        return 128 + signum
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


# --------------------------------------------------------------------------- evaluate


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``explainaug evaluate``."""
    parser.add_argument("run", help="run folder (with checkpoint.pt and run.json) or checkpoint")
    parser.add_argument(
        "--evaluators",
        nargs="+",
        default=None,
        choices=tuple(EVALUATORS),
        help="evaluators to run (default: all but those that need data of their own "
        f"({', '.join(EVALUATORS.names(optional=True))}), and localization where the data "
        "have no object masks)",
    )
    parser.add_argument(
        "--explainer",
        nargs="+",
        default=None,
        help="explainer(s) for the explanation evaluators (gradcam, scorecam, rise, ...; several "
        "are compared side by side), each with its own defaults on the run's CAM layer: "
        "--explainer gradcam gives every run the same ReLU'd Grad-CAM (default: the run's own, "
        "with the CAM layer and ReLU it trained with; ExCon's has no ReLU)",
    )
    parser.add_argument(
        "--corruptions", default="all", help='"all", "none" or comma-separated (default: all)'
    )
    parser.add_argument(
        "--severities",
        type=int,
        nargs="+",
        default=[1, 2, 3, 4, 5],
        choices=range(1, 6),
        metavar="S",
        help="corruption severities (1-5) (default: 1 2 3 4 5)",
    )
    parser.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=[2.0, 4.0, 8.0],
        help="L-inf attack budgets in 1/255 units, FGSM and PGD (default: 2 4 8)",
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
        choices=DATASETS.names(),
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
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars (default: shown)"
    )


def evaluate_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Evaluate a trained run (folder or checkpoint) and write a report."""
    evaluators = list(args.evaluators or EVALUATORS.names(optional=False))
    _log_to_console()
    from explainaug._validation import check_device
    from explainaug.build import load_shortcut_datasets, load_split
    from explainaug.data import DeviceLoader, make_loader
    from explainaug.evaluate.report import report
    from explainaug.runs import load_run, unfinished
    from explainaug.train.run_log import REPORT_DIR

    try:
        eps = _attack_budgets(args.eps)
        corruptions = _corruption_names(args.corruptions)
        device = check_device(args.device) if args.device else _default_device()
        model, experiment = load_run(
            args.run,
            device=device,
            root=args.data,
            dataset=args.dataset,
            image_size=args.image_size,
        )
        note = unfinished(args.run)
        test_set = load_split(experiment, "test", device)
        _check_classes(model, test_set, experiment.dataset, device)
        needs_cues = any(EVALUATORS[name].needs == "cues" for name in evaluators)
        cued_sets = load_shortcut_datasets(experiment) if needs_cues else ()
    except FileNotFoundError as error:
        moved = (
            " (recorded by the run; give --data where the data are now)"
            if (args.data is None and "--data" in str(error))
            else ""
        )
        parser.exit(2, f"{parser.prog}: error: {error}{moved}\n")
    except (ValueError, ImportError) as error:  # ImportError: timm missing
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    for name in [n for n in evaluators if EVALUATORS[n].needs == "masks"]:
        if getattr(test_set, "masks", None) is not None:
            continue
        if args.evaluators is not None:  # asked for by name
            parser.exit(
                2,
                f"{parser.prog}: error: {name} needs object masks; "
                f"{experiment.dataset} has none (use the shapes dataset)\n",
            )
        evaluators.remove(name)
        print(f"skipped {name}: dataset {experiment.dataset!r} has no object masks (shapes has)")
    out = (
        Path(args.out)
        if args.out
        else Path(args.run if Path(args.run).is_dir() else Path(args.run).parent) / REPORT_DIR
    )
    loader = make_loader(test_set, 256, shuffle=False, device=device, rank=0, world_size=1)
    shortcut_loaders = tuple(
        DeviceLoader(cued, 256, shuffle=False, device=device, cue_masks=True) for cued in cued_sets
    )
    try:
        names = args.explainer or [experiment.explainer]
        options = _explainer_options(names, args.explainer is None, model, experiment)
        if len(names) == 1 and any(EVALUATORS[name].explains for name in evaluators):
            # the report names the CAM layer a default resolves to, and Grad-CAM's ReLU
            options = _stated_options(names[0], options, model, test_set[0][0][None].to(device))
        results = report(
            {experiment.method: model},
            loader,
            out,
            evaluators=evaluators,
            explainer=names[0] if len(names) == 1 else names,
            explainer_options=options,
            corruptions=corruptions,
            severities=args.severities,
            attack=("fgsm", "pgd"),
            eps=eps,
            shortcut_loaders=shortcut_loaders or None,
            progress=not args.no_progress,
            notes=[note] if note else (),
        )
    except ValueError as error:  # bad names or values given on the command line
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    for warning in results["warnings"]:
        print(f"warning: {warning}")
    print(f"report written to {out} ({', '.join(results['figures']) or 'no figures'})")
    return 0


def _explainer_options(
    names: Sequence[str], own: bool, model: nn.Module, experiment: Experiment
) -> dict[str, object]:
    """The options the report builds the explainers with: the run's own explainer as it
    trained (``explain.build.run_options``: its CAM layer and ReLU), or named explainers with
    their own defaults on the run's CAM layer."""
    from explainaug.explain.build import run_options

    unknown = [name for name in names if name not in EXPLAINERS]
    if unknown:
        EXPLAINERS[unknown[0]]  # raises, listing the known names
    if own:
        return run_options(names[0], model, experiment.cam_layer)
    return {"layer": experiment.cam_layer}


def _stated_options(
    name: str, options: dict[str, object], model: nn.Module, image: torch.Tensor
) -> dict[str, object]:
    """``options`` with the CAM layer explainer ``name`` uses on ``image`` (the one resolver,
    ``explain.cam_layer``, without explaining) and Grad-CAM's ReLU, so the report states them."""
    from explainaug.explain import build_explainer, cam_layer

    if not EXPLAINERS[name].takes_layer:
        return {key: value for key, value in options.items() if key != "layer"}
    explainer = build_explainer(name, model, **options)
    stated = {**options, "layer": cam_layer(model, options.get("layer"), example=image)}
    if "relu" in inspect.signature(EXPLAINERS[name].load()).parameters:
        stated["relu"] = explainer.relu
    return stated


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


# ------------------------------------------------------------------------------- demo


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``explainaug demo``."""
    parser.add_argument(
        "--dataset",
        choices=DATASETS.names(needs_root=False),
        default="shapes",
        help="shipped data to train on (digits has no object masks: no localization) "
        "(default: shapes)",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds to run: mean and spread (default: 1)"
    )
    parser.add_argument(
        "--epochs", type=int, default=12, help="training epochs of every method (default: 12)"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS.names(),
        default=None,
        help="methods to compare (default: all)",
    )
    parser.add_argument(
        "--train-size", type=int, default=2000, help="training images, shapes only (default: 2000)"
    )
    parser.add_argument("--out", default="report", help="report folder (default: report)")
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars (default: shown)"
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        choices=tuple(demo.TABLES),
        default=["main"],
        help="main: the comparison table; shortcut: the shortcut testbed (trains every method "
        "again, on cued shapes) (default: main)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the demo already in --out and start over (default: continue it when it "
        "ran with the same settings, else refuse)",
    )


def demo_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the demo's tables (``explainaug demo``): in ``--out``, owned by this process alone,
    continuing the demo there when it ran with the same settings (``demo.json``)."""
    if args.seeds < 1 or args.epochs < 1 or args.train_size < 4:
        parser.error("--seeds and --epochs must be >= 1, --train-size >= 4")
    needs_shapes = [name for name in args.tables if demo.TABLES[name].cue_correlation is not None]
    if needs_shapes and args.dataset != "shapes":
        parser.error(f"--tables {needs_shapes[0]} needs --dataset shapes, got {args.dataset}")
    settings = demo.demo_settings(
        args.tables, args.dataset, args.seeds, args.epochs, args.methods, args.train_size
    )
    from explainaug.lock import FolderLock, check_free
    from explainaug.stopping import Stopped, stop_on_signals

    try:
        check_free(args.out)
        if not args.overwrite:
            demo.check_demo_folder(args.out, settings)
        for method in settings["--methods"]:  # raises SettingError where a setting cannot be
            demo.demo_experiment(method, args.dataset, 0, args.epochs, args.train_size)
        _log_to_console()
        if args.device is not None:  # before --overwrite deletes anything
            from explainaug._validation import check_device

            check_device(args.device)
        with stop_on_signals(), FolderLock(args.out):
            if args.overwrite:
                demo.clear_demo_folder(args.out)
            (Path(args.out) / demo.DEMO_FILE).write_text(json.dumps(settings, indent=2))
            for table in args.tables:
                demo.run_table(
                    table,
                    dataset=args.dataset,
                    seeds=args.seeds,
                    epochs=args.epochs,
                    methods=args.methods,
                    out_dir=args.out,
                    device=args.device,
                    progress=not args.no_progress,
                    train_size=args.train_size,
                )
    except Stopped as stop:
        print(
            f"stopped by {signal_name(stop.signum)}: no table written; run the same command "
            "again to resume (finished methods are kept, the interrupted one continues from "
            "its checkpoint)"
        )
        return stop.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's checkpoint was pending
        print("stopped by a second Ctrl-C: no table written; the runs keep their last checkpoints")
        return 128 + signal.SIGINT
    except (ValueError, FileNotFoundError, ImportError, FloatingPointError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 0


# ------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    """The ``explainaug`` parser: one subcommand per command, each with its own flags.

    Example:
        >>> build_parser().parse_args(["evaluate", "runs/a"]).run
        'runs/a'
    """
    parser = argparse.ArgumentParser(
        prog="explainaug",
        description="Explanation-aware training of image classifiers.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"explainaug {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, summary, description, add, command in (
        (
            "demo",
            "train and evaluate every method on data shipped with the install",
            plain_text(demo.__doc__ or ""),
            add_demo_arguments,
            demo_command,
        ),
        (
            "train",
            "train one method on one dataset (checkpoint, metrics and run.json in --out)",
            TRAIN_DESCRIPTION,
            lambda sub: add_train_arguments(sub, Experiment()),
            train_command,
        ),
        (
            "evaluate",
            "evaluate a trained run: accuracy, calibration, robustness, explanations",
            EVALUATE_DESCRIPTION,
            add_evaluate_arguments,
            evaluate_command,
        ),
    ):
        sub = commands.add_parser(
            name, help=summary, description=description, formatter_class=HelpFormatter
        )
        add(sub)
        sub.set_defaults(command=command, parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``explainaug`` command; returns its exit code: 0, 2 for a usage or
    setting error (one line on stderr), 130 (SIGINT) or 143 (SIGTERM) for an interrupted run.

    Example:
        >>> main(["--version"])
        explainaug 0.1.0
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "command"):
            parser.print_help()
            return 0
        return args.command(args, args.parser)
    except SystemExit as exit_:  # argparse's --help, --version and errors, and parser.exit
        return exit_.code if isinstance(exit_.code, int) else 1


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


def signal_name(signum: int) -> str:
    """SIGTERM, SIGINT (Ctrl-C), ... by number.

    Example:
        >>> signal_name(2)
        'SIGINT (Ctrl-C)'
    """
    name = signal.Signals(signum).name
    return f"{name} (Ctrl-C)" if signum == signal.SIGINT else name


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


if __name__ == "__main__":
    raise SystemExit(main())
