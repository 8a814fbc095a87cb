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

All return a :class:`flowcore.SpectralFlow` (a :class:`flowcore.Field`).
"""

import numpy as np

from flowcore.checks import positive
from flowcore._field import _spectral
from flowcore._loss import Loss

__all__ = ["ngf", "pgf", "igr", "bea", "third_order", "pf", "spectral"]


MAX_BEA_ORDER = 64


def _check(loss, lr):
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a flowcore.Loss (fc.losses.* or fc.Loss.from_expr), "
                        f"got {type(loss).__name__}")
    return positive(lr, "lr")


def bea_coefficients(order):
    """Coefficients of the principal BEA truncation −Σ_{p≤order} z^p/(p+1) (Theorem 3.1)."""
    if not isinstance(order, (int, np.integer)) or not 0 <= order <= MAX_BEA_ORDER:
        raise ValueError(f"order must be an integer in [0, {MAX_BEA_ORDER}], got {order!r} (the series "
                         "−Σ z^p/(p+1) converges only for |hλ| < 1, where the PF is its limit: use "
                         "fc.flows.pf for high orders)")
    return [-1.0 / (p + 1) for p in range(order + 1)]


def ngf(loss, lr):
    """Negative gradient flow θ' = −g (error O(h²) per GD step)."""
    return _spectral(loss, _check(loss, lr), "poly", [-1.0], name="ngf")


def pgf(loss, lr):
    """Positive gradient flow θ' = +g."""
    return _spectral(loss, _check(loss, lr), "poly", [1.0], name="pgf")


def igr(loss, lr):
    """Implicit gradient regularisation θ' = −g − (h/2) H g = −∇(E + (h/4)‖g‖²)."""
    return _spectral(loss, _check(loss, lr), "poly", [-1.0, -0.5], name="igr")


def bea(loss, lr, order):
    """Principal BEA truncation of order n: θ' = −Σ_{p≤n} (hH)^p g/(p+1)."""
    return _spectral(loss, _check(loss, lr), "poly", bea_coefficients(order), name=f"bea{order}")


def third_order(loss, lr):
    """θ' = −g − (h/2)Hg − h²((1/3)H²g + (1/12)T[g, g]): GD's modified equation to O(h³)."""
    lr = _check(loss, lr)
    return _spectral(loss, lr, "poly", bea_coefficients(2), np_coef=-lr * lr / 12, name="third_order")


def pf(loss, lr, nonprincipal=False, branch="track"):
    """Principal flow θ' = log(I − hH)/(hH) · g; exact for quadratic E (θ(nh) = GD iterate n).

    Complex-valued where hλ > 1. ``branch='track'`` (default) continues each
    eigen-direction's log(1 − hλ) along a trajectory (the field carries a branch state,
    see Field.branch_state/accept; integrators advance it on accepted steps).
    ``branch='principal'`` re-evaluates the principal log pointwise (the paper's code;
    discontinuous across the cut). At a real point with hλ > 1 both start on
    log(hλ − 1) + iπ. Points with |1 − hλ| < 1e-12 get Status.SINGULAR.
    ``nonprincipal=True`` adds −(h²/12) T[g, g] (PF+NP3, Eq 14).
    """
    lr = _check(loss, lr)
    if branch not in ("track", "principal"):
        raise ValueError(f"branch must be 'track' or 'principal', got {branch!r}")
    return _spectral(loss, lr, "pf", (), np_coef=-lr * lr / 12 if nonprincipal else 0.0,
                     track=branch == "track", name="pf+np3" if nonprincipal else "pf")


def spectral(loss, lr, alpha, name="spectral"):
    """θ' = Σ_i α_i(hλ_i) u_i (u_i^{-1} g) for a research α (slow: numpy, pointwise branch).

    ``alpha(z)`` gets z = hλ [n, D] sorted by decreasing real part (index 0 is the top
    direction u₀) and returns [n, D]. Example, the paper's Fig-14 flow that flips the
    sign along u₀ only: ``alpha=lambda z: np.where(np.arange(z.shape[1]) == 0, 1.0, -1.0)``.
    """
    if not callable(alpha):
        raise TypeError(f"alpha must be callable alpha(z[n, D]) -> [n, D], got {type(alpha).__name__}")
    return _spectral(loss, _check(loss, lr), "user", (), alpha=alpha, name=name)
