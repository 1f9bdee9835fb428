import math

import pytest
import torch
import torch.nn.functional as F

from trainables.game import losses


def slow_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2]).double()]
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        j = i + n if i < n else i - n
        num = math.exp(float(z[i] @ z[j]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(num / den)
    return total / (2 * n)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_matches_brute_force(t):
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert losses.nt_xent(z1, z2, t).item() == pytest.approx(slow_nt_xent(z1, z2, t), rel=1e-5)


def test_nt_xent_is_low_for_matching_views_and_rejects_bad_input():
    z = torch.eye(8)
    assert losses.nt_xent(z, z, 0.1) < losses.nt_xent(z, z.roll(1, 0), 0.1)
    with pytest.raises(ValueError, match="temperature"):
        losses.nt_xent(z, z, 0.0)
    with pytest.raises(ValueError, match="equal shape"):
        losses.nt_xent(z, z[:4], 0.1)


def test_cross_entropy_matches_definition():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    ref = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 2]) / 2
    assert losses.cross_entropy(logits, labels).item() == pytest.approx(ref.item())


def test_penalty_matches_per_sample_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 2, 8, 8, generator=g)
    y = (x + 0.5 * torch.rand(4, 3, 2, 8, 8, generator=g)).clamp(0, 1)
    y[0] = x[0]  # one sample under the bound
    ref = []
    for i in range(4):
        rms = math.sqrt(float(((x[i] - y[i]) ** 2).mean()))
        ref.append(max(0.0, rms - 0.2))
    assert losses.penalty(x, y, 0.2).item() == pytest.approx(sum(ref) / 4, abs=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.penalty(x, y, 1.5)


def test_feature_penalty_matches_per_sample_reference():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(5, 4, 3, generator=g)  # features (N, ...) of the raw clips
    out = ref + 0.6 * torch.randn(5, 4, 3, generator=g)
    out[0] = ref[0]  # one sample that f_A left alone
    out[1] = 1.05 * ref[1]  # one just over a bound of 0.02: relative distance 0.05
    expect = []
    for i in range(5):
        r, o = ref[i].flatten().tolist(), out[i].flatten().tolist()
        dist = math.sqrt(sum((a - b) ** 2 for a, b in zip(r, o, strict=True)))
        expect.append(max(0.0, dist / math.sqrt(sum(a * a for a in r)) - 0.02))
    assert expect[0] == 0.0 and expect[1] == pytest.approx(0.03, abs=1e-6)
    got = losses.feature_penalty(ref, out, 0.02).item()
    assert got == pytest.approx(sum(expect) / 5, rel=1e-5)
    # Relative: scaling every feature leaves it unchanged.
    assert losses.feature_penalty(3 * ref, 3 * out, 0.02).item() == pytest.approx(got, rel=1e-5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.feature_penalty(ref, out, -0.1)


@pytest.mark.parametrize("kind", ["pixels", "features"])
def test_penalties_match_finite_differences(kind):
    """Both penalties' gradients with respect to f_A's output, against central differences
    (float64 inputs), where the hinge is active for some samples and not for others."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 2, 4, 4, generator=g, dtype=torch.float64)
    y = (x + 0.3 * torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)).clamp(0, 1)
    y[0] = x[0] + 0.01  # under the bound: no gradient from this sample
    y.requires_grad_(True)
    bound = 0.1
    fn = losses.penalty if kind == "pixels" else losses.feature_penalty

    def f(out: torch.Tensor) -> torch.Tensor:
        return fn(x, out, bound).double()

    # The losses compute in float32, so the differences step by 1e-3.
    assert torch.autograd.gradcheck(f, (y,), eps=1e-3, atol=1e-3, rtol=1e-2)
    f(y).backward()
    assert y.grad is not None and float(y.grad[0].abs().max()) == 0.0
    assert float(y.grad[1:].abs().max()) > 0


def _anon_grad(bound: float, shift: float) -> float:
    """Gradient norm that the penalty alone gives a tiny f_A = x + w."""
    w = torch.full((1, 3, 1, 1), shift, requires_grad=True)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    losses.penalty(x, x + w, bound).backward()
    assert w.grad is not None
    return float(w.grad.norm())


def test_penalty_moves_fa_only_when_rms_exceeds_bound():
    assert _anon_grad(bound=0.1, shift=0.3) > 0.1  # RMS 0.3 > B: pushed back
    assert _anon_grad(bound=0.5, shift=0.3) == 0.0  # RMS 0.3 < B: free


def test_penalty_gradient_descends_towards_the_bound():
    w = torch.full((1, 3, 1, 1), 0.4, requires_grad=True)
    x = torch.full((2, 3, 4, 4), 0.3)
    opt = torch.optim.SGD([w], lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        losses.penalty(x, x + w, 0.2).backward()
        opt.step()
    assert float(w.detach().abs().mean()) == pytest.approx(0.2, abs=0.02)


def test_anonymizer_objective_signs():
    obj = losses.anonymizer_objective(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(0.5), 2.0)
    assert obj.item() == pytest.approx(1.0 - 2.0 + 1.0)


def test_loss_weights_scale_their_terms():
    obj = losses.anonymizer_objective(
        torch.tensor(1.0), torch.tensor(2.0), torch.tensor(0.5), 2.0, w_action=3.0, w_privacy=0.5
    )
    assert obj.item() == pytest.approx(3.0 - 1.0 + 1.0)


def test_chance_level_is_the_loss_of_indistinguishable_embeddings():
    n = 8
    z = torch.ones(n, 4)  # every similarity equal
    assert losses.nt_xent(z, z, 0.1).item() == pytest.approx(losses.nt_xent_chance(n), rel=1e-5)
    above = torch.tensor(losses.nt_xent_chance(n) + 1.0, requires_grad=True)
    clamped = losses.clamp_at_chance(above, n)
    clamped.backward()
    assert above.grad is not None
    assert clamped.item() == pytest.approx(losses.nt_xent_chance(n)) and above.grad.item() == 0.0
    below = torch.tensor(1.0, requires_grad=True)
    losses.clamp_at_chance(below, n).backward()
    assert (
        below.grad is not None and below.grad.item() == 1.0
    )  # below chance, f_A still gains by raising L_B
