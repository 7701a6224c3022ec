"""FGSM/PGD against hand-written reference loops, invariants, and gradient-masking checks."""

import copy

import pytest
import torch
import torch.nn.functional as F

from explainaug.evaluate.accuracy import accuracy
from explainaug.evaluate.robustness import fgsm, pgd, robustness
from explainaug.models import SmallCNN


def synthetic_batch(n, generator):
    """Three classes: class c brightens channel c. Images 3x8x8 in [0, 1]."""
    y = torch.randint(0, 3, (n,), generator=generator)
    x = 0.45 + 0.1 * torch.randn(n, 3, 8, 8, generator=generator)
    x = x + 0.15 * F.one_hot(y, 3).float()[:, :, None, None]
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def trained():
    """A tiny SmallCNN trained for a few steps on the synthetic task, and a test loader."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = SmallCNN(num_classes=3, width=4, mean=(0.5,) * 3, std=(0.25,) * 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        x, y = synthetic_batch(32, g)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    loader = [synthetic_batch(32, g) for _ in range(2)]
    return model, loader


def reference_pgd(model, x, y, eps, steps, alpha, start):
    """The textbook loop, written independently: backward on a copy, sign step, projection."""
    model = copy.deepcopy(model).eval()
    x_adv = torch.min(torch.max(x + start, x - eps), x + eps).clamp(0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        F.cross_entropy(model(x_adv), y).backward()
        x_adv = x_adv.detach() + alpha * x_adv.grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def test_pgd_with_fixed_start_matches_reference_loop(trained):
    model, loader = trained
    x, y = loader[0]
    eps, steps, alpha = 8 / 255, 5, 2 / 255
    start = (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 1) * eps
    got = pgd(model, x, y, eps, steps=steps, step_size=alpha, start=start)
    assert torch.allclose(got, reference_pgd(model, x, y, eps, steps, alpha, start), atol=1e-6)
    # no random start is the zero start; default step size is 2.5 * eps / steps
    got = pgd(model, x, y, eps, steps=steps, random_start=False)
    expected = reference_pgd(model, x, y, eps, steps, 2.5 * eps / steps, torch.zeros_like(x))
    assert torch.allclose(got, expected, atol=1e-6)


def test_fgsm_matches_reference(trained):
    model, loader = trained
    x, y = loader[0]
    reference = copy.deepcopy(model)
    x_ref = x.clone().requires_grad_(True)
    F.cross_entropy(reference(x_ref), y).backward()
    expected = (x + 4 / 255 * x_ref.grad.sign()).clamp(0, 1)
    assert torch.allclose(fgsm(model, x, y, 4 / 255), expected, atol=1e-7)


@pytest.mark.parametrize("eps", [0.0, 1 / 255, 8 / 255, 0.3])
def test_attacks_stay_within_eps_and_unit_range(trained, eps):
    model, loader = trained
    x, y = loader[0]
    x = torch.cat([x[:16], torch.zeros_like(x[:4]), torch.ones_like(x[:4])])  # boundary images
    y = y[:24]
    generator = torch.Generator().manual_seed(0)
    for x_adv in (fgsm(model, x, y, eps), pgd(model, x, y, eps, steps=3, generator=generator)):
        assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
        assert float((x_adv - x).abs().max()) <= eps + 1e-6
        assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
        assert not x_adv.requires_grad


def test_attacks_leave_model_untouched():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4).train()
    model.block2.eval()  # a mixed-mode model must come back exactly as it was
    model.fc.weight.grad = torch.full_like(model.fc.weight, 7.0)
    modes = [m.training for m in model.modules()]
    state = copy.deepcopy(model.state_dict())
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 3, (8,))
    fgsm(model, x, y, 0.1)
    pgd(model, x, y, 0.1, steps=2)
    robustness(model, [(x, y)], attack=("fgsm", "pgd"), eps=(0.1,), steps=2)
    assert [m.training for m in model.modules()] == modes
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # parameters and BN running stats
    assert torch.equal(model.fc.weight.grad, torch.full_like(model.fc.weight, 7.0))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "fc.weight")


def test_attack_runs_in_eval_mode():
    """A train-mode BN model is attacked as in eval: same result as attacking its eval copy."""
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4)
    model(torch.rand(16, 3, 8, 8))  # move the running stats away from their init
    x, y = torch.rand(4, 3, 8, 8), torch.randint(0, 3, (4,))
    start = torch.zeros_like(x)
    expected = pgd(copy.deepcopy(model).eval(), x, y, 0.05, steps=2, start=start)
    assert torch.equal(pgd(model.train(), x, y, 0.05, steps=2, start=start), expected)


def test_autocast_is_off_inside_the_attack(trained):
    model, loader = trained
    x, y = loader[0]
    start = torch.zeros_like(x)
    expected = pgd(model, x, y, 8 / 255, steps=3, start=start)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = pgd(model, x, y, 8 / 255, steps=3, start=start)
    assert torch.equal(got, expected)


def test_accuracy_does_not_increase_with_eps_and_reaches_zero(trained):
    model, loader = trained
    radii = (0.0, 4 / 255, 16 / 255, 0.5)
    result = robustness(model, loader, attack=("fgsm", "pgd"), eps=radii, steps=10)
    clean = result["clean"]
    assert clean >= 0.9  # the tiny model learned the task
    assert clean == pytest.approx(accuracy(model, loader, topk=(1,))["top1"])
    assert result["count"] == 64
    for name in ("fgsm", "pgd"):
        curve = [result["adversarial"][name][eps] for eps in radii]
        assert curve[0] == pytest.approx(clean)
        assert all(later <= earlier for earlier, later in zip(curve, curve[1:], strict=False)), (
            name,
            curve,
        )
    pgd_curve, fgsm_curve = result["adversarial"]["pgd"], result["adversarial"]["fgsm"]
    # gradient-masking red flags: FGSM beating PGD, accuracy not reaching ~0 at large eps
    assert all(pgd_curve[eps] <= fgsm_curve[eps] + 1 / 64 for eps in radii)
    assert pgd_curve[16 / 255] < clean
    assert pgd_curve[0.5] <= 0.02


def test_robustness_is_seeded(trained):
    model, loader = trained
    first = robustness(model, loader, eps=(8 / 255,), steps=3, seed=3)
    assert robustness(model, loader, eps=(8 / 255,), steps=3, seed=3) == first
    assert set(first) == {"clean", "count", "adversarial"}
    assert set(first["adversarial"]) == {"pgd"} and set(first["adversarial"]["pgd"]) == {8 / 255}


def test_bad_input():
    model = SmallCNN(num_classes=3, width=4)
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="no batches"):
        robustness(model, [])
    with pytest.raises(ValueError, match="attack"):
        robustness(model, [(x, y)], attack="cw")
    with pytest.raises(ValueError, match="attack"):
        robustness(model, [(x, y)], attack=())
    with pytest.raises(ValueError, match="eps"):
        robustness(model, [(x, y)], eps=(-0.1,))
    with pytest.raises(ValueError, match="eps"):
        robustness(model, [(x, y)], eps=())
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, -1 / 255)
    with pytest.raises(ValueError, match="eps"):
        pgd(model, x, y, float("nan"))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(model, x * 255, y, 8 / 255)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robustness(model, [(x - 0.5, y)])
    with pytest.raises(ValueError, match="shape"):
        fgsm(model, x, y[:2], 0.1)
    with pytest.raises(ValueError, match="shape"):
        robustness(model, [(x, y[:2])])
    with pytest.raises(ValueError, match="start"):
        pgd(model, x, y, 0.1, start=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="steps"):
        pgd(model, x, y, 0.1, steps=0)
    with pytest.raises(ValueError, match="step_size"):
        robustness(model, [(x, y)], step_size=0.0)
    with pytest.raises(TypeError, match="integer"):
        fgsm(model, x, y.float(), 0.1)


@pytest.mark.gpu
def test_robustness_on_cuda_matches_cpu(trained):
    model, loader = trained
    cpu = robustness(model, loader, attack="fgsm", eps=(8 / 255,))
    cuda_model = copy.deepcopy(model).cuda()
    gpu = robustness(cuda_model, loader, attack=("fgsm", "pgd"), eps=(8 / 255,), steps=5)
    assert gpu["clean"] == pytest.approx(cpu["clean"], abs=1 / 64)
    assert abs(gpu["adversarial"]["fgsm"][8 / 255] - cpu["adversarial"]["fgsm"][8 / 255]) <= 2 / 64
    assert gpu["adversarial"]["pgd"][8 / 255] <= gpu["clean"]
