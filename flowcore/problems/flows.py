"""The continuous-time models of gradient descent with learning rate h (Rosca et al. 2023).

Every flow is θ' = α(hH) g (+ a non-principal term), z = hλ:

| flow | α(z) | extra |
|---|---|---|
| ngf | −1 | |
| pgf | +1 | |
| igr | −(1 + z/2) | |
| bea(order=n) | −Σ_{p≤n} z^p/(p+1) | |
| third_order | −(1 + z/2 + z²/3) | −(h²/12) T[g, g] |
| pf | log(1 − z)/z (−1 at 0) | −(h²/12) T[g, g] with nonprincipal=True |
| spectral(alpha=…) | your α(z) per eigen-direction | |

All return a :class:`flowcore.SpectralFlow` (a :class:`flowcore.Field`); each model is defined
once, in :mod:`flowcore.problems.models`, and these are its constructors.
"""
from __future__ import annotations

from typing import Callable

from flowcore.engine.checks import positive
from flowcore.problems.models import model, pf_alpha
from flowcore.engine._field import SpectralFlow, _spectral
from flowcore.engine._loss import Loss

__all__ = ["ngf", "pgf", "igr", "bea", "third_order", "pf", "spectral", "pf_alpha"]


def ngf(loss: Loss, lr: float) -> SpectralFlow:
    """Negative gradient flow θ' = −g (error O(h²) per GD step)."""
    return model("ngf").build(loss, lr)


def pgf(loss: Loss, lr: float) -> SpectralFlow:
    """Positive gradient flow θ' = +g (the paper's §5: GD's unstable directions follow it)."""
    return model("pgf").build(loss, lr)


def igr(loss: Loss, lr: float) -> SpectralFlow:
    """Implicit gradient regularisation θ' = −g − (h/2) H g = −∇(E + (h/4)‖g‖²)."""
    return model("igr").build(loss, lr)


def bea(loss: Loss, lr: float, order: int) -> SpectralFlow:
    """Principal BEA truncation of order n: θ' = −Σ_{p≤n} (hH)^p g/(p+1)."""
    return model("bea").build(loss, lr, order=order)


def third_order(loss: Loss, lr: float) -> SpectralFlow:
    """θ' = −g − (h/2)Hg − h²((1/3)H²g + (1/12)T[g, g]): GD's modified equation to O(h³)."""
    return model("third_order").build(loss, lr)


def pf(loss: Loss, lr: float, nonprincipal: bool = False, branch: str = "track", krylov=None):
    """Principal flow θ' = log(I − hH)/(hH) · g; exact for quadratic E (θ(nh) = GD iterate n).

    Complex-valued where hλ > 1. ``branch='track'`` (default) continues each
    eigen-direction's log(1 − hλ) along a trajectory (the field carries a branch state,
    see Field.branch_state/accept; integrators advance it on accepted steps).
    ``branch='principal'`` re-evaluates the principal log pointwise (the paper's code;
    discontinuous across the cut). At a real point with hλ > 1 both start on
    log(hλ − 1) + iπ. Points with |1 − hλ| < 1e-12 get Status.SINGULAR.
    ``nonprincipal=True`` adds −(h²/12) T[g, g] (PF+NP3, Eq 14).

    ``krylov``: φ(hH)g from Hessian–vector products by Arnoldi, H never formed (a JAX loss;
    :mod:`flowcore.engine.krylov`: the same branch rule carried on the Ritz values, an a-posteriori error
    estimate that sets the Krylov dimension): True, or ``fc.Krylov(tol=...)`` for another bound on
    that estimate (default 1e-11, relative). None (default): for a JAX loss with more than
    ``fc.nn.KRYLOV_MIN_DIM`` parameters, where it costs less than forming H and its eigenvectors.
    False: the dense PF.
    """
    return model("pf_np3" if nonprincipal else "pf").build(loss, lr, branch=branch, krylov=krylov)


def spectral(loss: Loss, lr: float, alpha: Callable, name: str = "spectral") -> SpectralFlow:
    """θ' = Σ_i α_i(hλ_i) u_i (u_i^{-1} g) for a research α (slow: numpy, pointwise branch).

    ``alpha(z)`` gets z = hλ [n, D] sorted by decreasing real part (index 0 is the top
    direction u₀) and returns [n, D]. Example, the paper's Fig-14 flow that flips the
    sign along u₀ only: ``alpha=lambda z: np.where(np.arange(z.shape[1]) == 0, 1.0, -1.0)``.
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a flowcore.Loss (fc.losses.* or fc.Loss.from_expr), "
                        f"got {type(loss).__name__}")
    if not callable(alpha):
        raise TypeError(f"alpha must be callable alpha(z[n, D]) -> [n, D], got {type(alpha).__name__}")
    return _spectral(loss, positive(lr, "lr"), "user", (), alpha=alpha, name=name)
