"""Losses of the minimax game (paper Eq. 3-6): pure tensor-in, tensor-out functions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_T: mean cross-entropy of action logits (N, K) against labels (N,)."""
    return F.cross_entropy(logits, labels)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """L_B: SimCLR's NT-Xent over two views (N, D) of the same N samples.

    Row i of ``z1`` and row i of ``z2`` are the positive pair; the other 2N - 2 embeddings in the
    batch are negatives. Embeddings are L2-normalised here, so any projection works.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"nt_xent needs two (N, D) views of equal shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def rms_per_sample(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RMS(x - y) of each sample over all its non-batch dimensions; pixels in [0, 1]."""
    diff = (x.float() - y.float()).flatten(1)
    # The epsilon keeps the gradient finite where f_A(x) == x exactly.
    return torch.sqrt(diff.pow(2).mean(dim=1) + 1e-12)


def penalty(x: torch.Tensor, anonymized: torch.Tensor, bound: float) -> torch.Tensor:
    """L_penalty = mean over samples of max(0, RMS(x - f_A(x)) - B), differentiable.

    The released reference code detached this term (``.item()``) and pooled the RMS over the
    batch; here it is computed per sample and keeps its gradient, so it moves f_A.
    """
    if not 0.0 <= bound <= 1.0:
        raise ValueError(f"the bound B must lie in [0, 1], got {bound}")
    return F.relu(rms_per_sample(x, anonymized) - bound).mean()


def feature_distance(ref: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """||ref - out|| / ||ref|| of each sample (features flattened over its non-batch dims): how
    far f_A moved a sample in a feature space, relative to the sample's own feature norm."""
    r, o = ref.float().flatten(1), out.float().flatten(1)
    # The epsilons keep the gradient finite where f_A(x) == x, and the ratio where ref is 0.
    return torch.sqrt((r - o).pow(2).sum(dim=1) + 1e-12) / (r.norm(dim=1) + 1e-12)


def feature_penalty(ref: torch.Tensor, out: torch.Tensor, bound: float) -> torch.Tensor:
    """The feature-based penalty (the paper's section 3 form): mean over samples of
    max(0, ||phi(x) - phi(f_A(x))|| / ||phi(x)|| - B), with ``ref`` = phi(x) (a fixed reference,
    computed without gradient) and ``out`` = phi(f_A(x)); B is a relative bound in [0, 1]."""
    if not 0.0 <= bound <= 1.0:
        raise ValueError(f"the bound B must lie in [0, 1], got {bound}")
    return F.relu(feature_distance(ref, out) - bound).mean()


def nt_xent_chance(n: int) -> float:
    """The NT-Xent of 2N embeddings that tell nothing apart (every similarity equal):
    log(2N - 1), the level of an f_B at chance."""
    return math.log(2 * n - 1)


def clamp_at_chance(l_b: torch.Tensor, n: int) -> torch.Tensor:
    """L_B capped at chance level: past it, -L_B gives f_A no gradient (an f_B that is already
    at chance cannot be pushed further by erasing more)."""
    return torch.clamp(l_b, max=nt_xent_chance(n))


def anonymizer_objective(
    l_t: torch.Tensor,
    l_b: torch.Tensor,
    l_pen: torch.Tensor,
    lam: float,
    *,
    w_action: float = 1.0,
    w_privacy: float = 1.0,
) -> torch.Tensor:
    """L_A = w_T L_T - w_B L_B + lambda * L_penalty (paper Eq. 6 with the released code's loss
    weights, 1 by default)."""
    return w_action * l_t - w_privacy * l_b + lam * l_pen


def l1_reconstruction(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Identity initialisation loss (paper Eq. 5)."""
    return (x.float() - y.float()).abs().mean()


def multilabel_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE for the evaluation privacy classifier f_B' over (N, A) attribute logits."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())
