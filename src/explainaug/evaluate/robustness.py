"""L-inf adversarial robustness: FGSM and PGD in [0, 1] pixel space.

Attacks follow Madry et al. (2018) and torchattacks: cross-entropy on the logits (never softmax),
the sign of the input gradient, projection onto the eps-ball around the clean image and clamping
to [0, 1]. ``eps`` is in pixel units of [0, 1] images (``8/255`` is the CIFAR standard); models
normalise inside, so the attack never sees normalised inputs. The model runs in eval mode (its
mode is restored) with autocast off, so gradients are fp32. Gradients are taken with
``torch.autograd.grad`` w.r.t. the input only: parameters and their ``.grad`` are untouched.

PGD's default step size is ``2.5 * eps / steps`` (Madry et al.), which gives the usual 2/255 for
eps = 8/255 and 10 steps. These attacks are a quick check; publish AutoAttack numbers (fra31)
and watch for gradient masking: FGSM beating PGD, or accuracy not reaching 0 as eps grows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import eval_mode
from explainaug._validation import check_count, check_images, check_labels, check_positive
from explainaug.evaluate._predict import iterate_batches, model_device

if TYPE_CHECKING:
    from explainaug.evaluate.report import Job

ATTACKS = ("fgsm", "pgd")
AttackSpec = str | Sequence[str]


def _check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool):
        raise TypeError(f"eps must be a number, got {type(eps).__name__}")
    if not 0 <= eps < float("inf"):
        raise ValueError(
            f"eps must be a finite number >= 0 (L-inf radius in [0, 1] pixels), got {eps}"
        )
    return float(eps)


def _check_attack_inputs(model: nn.Module, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = check_images(x)
    labels = check_labels(labels, x.shape[0])
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"x must be images in [0, 1] (models normalise inside), got values in [{low}, {high}]"
        )
    if labels.device != x.device:
        raise ValueError(f"labels is on {labels.device} but x is on {x.device}")
    return x, labels.long()


def _input_gradient(model: nn.Module, x: Tensor, labels: Tensor) -> Tensor:
    """Gradient of the summed cross-entropy w.r.t. ``x`` only, in fp32 without autocast."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        loss = F.cross_entropy(model(x).float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _project(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0, 1)


def fgsm(model: nn.Module, x: Tensor, labels: Tensor, eps: float) -> Tensor:
    """Fast gradient sign method: ``clamp(x + eps * sign(grad_x CE(model(x), labels)), 0, 1)``.

    ``x``: clean images ``[B, C, H, W]`` in [0, 1]; ``eps`` in their pixel units. Returns
    adversarial images (fp32, detached), within ``eps`` of ``x`` and in [0, 1].

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> x = torch.rand(2, 3, 2, 2)
        >>> bool(((fgsm(model, x, torch.tensor([0, 1]), 0.1) - x).abs() <= 0.1 + 1e-6).all())
        True
    """
    x, labels = _check_attack_inputs(model, x, labels)
    return _fgsm(model, x, labels, _check_eps(eps))


def _fgsm(model: nn.Module, x: Tensor, labels: Tensor, eps: float) -> Tensor:
    x = x.detach().float()
    with eval_mode(model):
        grad = _input_gradient(model, x, labels)
    return (x + eps * grad.sign()).clamp(0, 1)


def pgd(
    model: nn.Module,
    x: Tensor,
    labels: Tensor,
    eps: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    start: Tensor | None = None,
) -> Tensor:
    """Projected gradient descent (Madry et al.): untargeted L-inf, maximising cross-entropy.

    Each step: ``x_adv += step_size * sign(grad)``, then project onto the eps-ball around ``x``
    and clamp to [0, 1]. Inputs and output as in :func:`fgsm`.

    Args:
        step_size: step length; ``None`` means ``2.5 * eps / steps``.
        random_start: start from ``x`` plus uniform noise in ``[-eps, eps]`` (then clamped).
        generator: random generator for the start, on the device of ``x``.
        start: a fixed initial perturbation ``[B, C, H, W]`` (overrides ``random_start``); it is
            projected onto the eps-ball and [0, 1] like every step.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> x = torch.rand(2, 3, 2, 2)
        >>> pgd(model, x, torch.tensor([0, 1]), eps=8 / 255, steps=3).shape
        torch.Size([2, 3, 2, 2])
    """
    eps = _check_eps(eps)
    _check_pgd_settings(steps, step_size)
    x, labels = _check_attack_inputs(model, x, labels)
    if start is not None and (not isinstance(start, Tensor) or start.shape != x.shape):
        got = tuple(start.shape) if isinstance(start, Tensor) else type(start).__name__
        raise ValueError(f"start must be a perturbation of shape {tuple(x.shape)}, got {got}")
    return _pgd(model, x, labels, eps, steps, step_size, random_start, generator, start)


def _check_pgd_settings(steps: int, step_size: float | None) -> None:
    check_count(steps, "steps")
    if step_size is not None:
        check_positive(step_size, "step_size")


def _pgd(
    model: nn.Module,
    x: Tensor,
    labels: Tensor,
    eps: float,
    steps: int,
    step_size: float | None,
    random_start: bool,
    generator: torch.Generator | None,
    start: Tensor | None = None,
) -> Tensor:
    step_size = 2.5 * eps / steps if step_size is None else step_size
    x = x.detach().float()
    if start is not None:
        x_adv = _project(x + start.to(x), x, eps)
    elif random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = _project(x + (2 * noise - 1) * eps, x, eps)
    else:
        x_adv = x.clone()
    with eval_mode(model):
        for _ in range(steps):
            grad = _input_gradient(model, x_adv, labels)
            x_adv = _project(x_adv + step_size * grad.sign(), x, eps)
    return x_adv


def _attack_names(attack: AttackSpec) -> list[str]:
    names = [attack] if isinstance(attack, str) else list(attack)
    unknown = [name for name in names if name not in ATTACKS]
    if unknown or not names:
        raise ValueError(f"attack must be one of {ATTACKS} or a sequence of them, got {attack!r}")
    return names


class RobustnessResult(TypedDict):
    """What ``robustness`` returns: clean accuracy and ``{attack: {eps: accuracy}}``."""

    clean: float
    count: int
    adversarial: dict[str, dict[float, float]]


def robustness(
    model: nn.Module,
    loader: Iterable,
    *,
    attack: AttackSpec = "pgd",
    eps: Sequence[float] = (2 / 255, 4 / 255, 8 / 255),
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
) -> RobustnessResult:
    """Clean and adversarial top-1 accuracy under FGSM and/or PGD for each eps.

    A sample counts as robust when it is classified correctly both clean and under attack (as
    AutoAttack and RobustBench count), so adversarial accuracy never exceeds clean accuracy.

    Args:
        loader: batches of images in [0, 1]; moved to the model's device.
        attack: ``"fgsm"``, ``"pgd"`` or a sequence of both.
        eps: L-inf radii in [0, 1] pixel units.
        steps, step_size, random_start: PGD's, as in :func:`pgd` (for each eps).
        seed: seed of PGD's random starts (one generator on the model's device per call).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> loader = [(torch.rand(4, 3, 2, 2), torch.tensor([0, 1, 2, 0]))]
        >>> result = robustness(model, loader, attack=("fgsm", "pgd"), eps=(0.1,), steps=2)
        >>> sorted(result["adversarial"]), result["count"]
        (['fgsm', 'pgd'], 4)
    """
    names = _attack_names(attack)
    radii = [eps] if isinstance(eps, (int, float)) else list(eps)
    if not radii:
        raise ValueError("eps must hold at least one radius")
    radii = [_check_eps(value) for value in radii]
    _check_pgd_settings(steps, step_size)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    device = model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    clean_correct = torch.zeros((), dtype=torch.long, device=device)
    robust_correct = {(name, radius): clean_correct.clone() for name in names for radius in radii}
    count = 0
    with eval_mode(model):
        for x, y, *_ in iterate_batches(loader, device):
            x, y = _check_attack_inputs(model, x, y)
            with torch.no_grad():
                correct = model(x).argmax(dim=1) == y
            clean_correct += correct.sum()
            count += y.shape[0]
            for name, radius in robust_correct:
                if name == "fgsm":
                    x_adv = _fgsm(model, x, y, radius)
                else:
                    x_adv = _pgd(model, x, y, radius, steps, step_size, random_start, generator)
                with torch.no_grad():
                    robust = correct & (model(x_adv).argmax(dim=1) == y)
                robust_correct[name, radius] += robust.sum()
    adversarial: dict[str, dict[float, float]] = {name: {} for name in names}
    for (name, radius), hits in robust_correct.items():
        adversarial[name][radius] = int(hits) / count
    return {"clean": int(clean_correct) / count, "count": count, "adversarial": adversarial}


def run_in_report(job: Job) -> dict:
    """The ``robustness`` evaluator of ``evaluate.report``."""
    options = job.options
    return robustness(
        job.model, job.loader, attack=options.attack, eps=options.eps, seed=options.seed
    )
