"""SGD's continuous models: stochastic modified equations and SGD's implicit regularizer.

For E(θ) = (1/n) Σ_k ℓ(θ; ξ_k) (a :class:`flowcore.DataLoss`), SGD with rate η and batch B,
θ⁺ = θ − η ĝ_B(θ), is followed in time t = kη by

* SME-1 (Li, Tai & E 2017, 2019): dθ = −∇E dt + (η ν Σ(θ)/B)^{1/2} dW — weak order 1 in η,
* SME-2: dθ = −∇(E + (η/4)‖∇E‖²) dt + (η ν Σ(θ)/B)^{1/2} dW — weak order 2 in η,

with Σ(θ) = Cov_k ∇ℓ_k and ν = 1 with replacement, (n − B)/(n − 1) without. Over one epoch of m
minibatches Ê_1, …, Ê_m (without replacement), SGD follows to O(η²) the gradient flow of the
modified loss of Smith, Dherin, Barrett & De (2021),

    E_SGD = E + (η/4m) Σ_k ‖∇Ê_k‖²,

whose mean over random shuffles is E + (η/4)‖∇E‖² + (η/4B)·(n − B)/(n − 1)·(1/n) Σ_k ‖∇ℓ_k − ∇E‖².
Both are derived here symbolically from the per-example loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

import flowcore as fc

__all__ = ["sme", "sgd_modified_loss", "SGDModifiedLoss"]


def _data(data):
    if not isinstance(data, fc.DataLoss):
        raise TypeError(f"data must be a flowcore.DataLoss (fc.DataLoss.from_expr(example, data)), "
                        f"got {type(data).__name__}")
    return data


def _grad(expr, vars):
    return [sp.diff(expr, v) for v in vars]


def sme(data, lr, batch=1, order=1, replace=True) -> fc.SDE:
    """The stochastic modified equation of order 1 or 2 of SGD on ``data`` (rate lr, batch B),
    as a :class:`flowcore.SDE` in time t = k·lr (integrate it with :func:`flowcore.sde_solve`)."""
    data = _data(data)
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    noise = fc.data_noise(data, lr, batch, replace)
    E = data.mean_expr
    if order == 2:
        g = _grad(E, data.vars)
        E = E + sp.Float(noise.lr, 17) / 4 * sum(gi**2 for gi in g)
    drift = [-gi for gi in _grad(E, data.vars)]
    return fc.SDE(drift, noise, vars=data.vars, name=f"SME-{order} (lr={noise.lr:g}, B={noise.batch})")


@dataclass
class SGDModifiedLoss:
    """E_SGD(θ) of Smith et al. (2021), sympy; ``partition`` None: the mean over random shuffles."""
    expr: sp.Expr
    vars: tuple
    lr: float
    batch: int
    partition: list | None

    def latex(self):
        return sp.latex(self.expr)

    def _repr_latex_(self):
        return f"$E_{{SGD}}(\\theta) = {self.latex()}$"

    def __repr__(self):
        how = "mean over shuffles" if self.partition is None else f"{len(self.partition)} given batches"
        return f"SGDModifiedLoss(lr={self.lr:g}, B={self.batch}, {how}: {self.expr})"

    def to_loss(self):
        return fc.Loss.from_expr(self.expr, vars=self.vars, name="SGD modified loss")

    def to_flow(self):
        """dθ/dt = −∇E_SGD (in time t = k·lr), the flow SGD follows to O(lr²) over an epoch."""
        return fc.flows.ngf(self.to_loss(), self.lr)


def sgd_modified_loss(data, lr, batch=1, partition=None) -> SGDModifiedLoss:
    """E + (lr/4m) Σ_k ‖∇Ê_k‖² over the m minibatches of ``partition`` (lists of example indices,
    each of size ``batch``), or its mean over random shuffles into ⌊n/B⌋ batches when partition is
    None: E + (lr/4)‖∇E‖² + (lr/4B)((n − B)/(n − 1)) (1/n) Σ_k ‖∇ℓ_k − ∇E‖² (Smith et al. 2021, the
    mean over shuffles of the partition-wise loss; written with the data's moments)."""
    data = _data(data)
    lr = fc.checks.positive(lr, "lr")
    batch = fc.checks.count(batch, "batch", 1, data.n)
    E = data.mean_expr
    eta = sp.Float(lr, 17)
    if partition is not None:
        parts = [data._indices(np.asarray(p)) for p in partition]
        if any(len(p) != batch for p in parts):
            raise ValueError(f"every batch of partition must hold batch={batch} examples")
        used = np.concatenate(parts)
        if len(np.unique(used)) != len(used):
            raise ValueError("partition uses an example twice: the batches of an epoch are disjoint")
        reg = sum(sum(gi**2 for gi in _grad(data.minibatch_expr(p), data.vars)) for p in parts)
        out = E + eta / (4 * len(parts)) * reg
        return SGDModifiedLoss(sp.expand(out), data.vars, lr, batch, [list(map(int, p)) for p in parts])
    n = data.n
    gE = _grad(E, data.vars)
    gl = _grad(data.example, data.vars)
    # (1/n) Σ_k ‖∇ℓ_k − ∇E‖² = mean_k ‖∇ℓ_k‖² − ‖∇E‖²
    gamma = data.moment_mean(sp.expand(sum(gi**2 for gi in gl))) - sum(gi**2 for gi in gE)
    factor = sp.Rational(n - batch, n - 1) if n > 1 else 0
    out = E + eta / 4 * sum(gi**2 for gi in gE) + eta / (4 * batch) * factor * gamma
    return SGDModifiedLoss(sp.expand(out), data.vars, lr, batch, None)
