"""The models of gradient descent, each defined once: the maps GD runs and the flows that follow it.

A **map** is run by :func:`flowcore.descend`; a **flow** θ' = α(hH) g + c·h²·T[g, g] is a
:class:`flowcore.SpectralFlow` (Rosca et al. 2023, Table 1; z = hλ):

| model | kind | α(z) | c (non-principal) |
|---|---|---|---|
| gd | map θ⁺ = θ − hg | | |
| heavy_ball | map θ⁺ = θ − hg + β(θ − θ⁻) | | |
| nesterov | map y = θ + β(θ − θ⁻), θ⁺ = y − hg(y) | | |
| dal | map with h(θ) = 2/‖Hĝ‖^p | | |
| ngf | flow | −1 | |
| pgf | flow | +1 | |
| igr | flow | −(1 + z/2) | |
| third_order | flow | −(1 + z/2 + z²/3) | −1/12 |
| bea | flow, order n | −Σ_{p≤n} z^p/(p+1) | |
| pf | flow | log(1 − z)/z (−1 at 0; +iπ past z = 1) | |
| pf_np3 | flow | as pf | −1/12 |

Linear stability at a critical point with Hessian eigenvalue λ: a flow's Jacobian eigenvalue is
α(hλ)·λ (so −λ for NGF, log(1 − hλ)/h for the PF); GD's multiplier is 1 − hλ; heavy ball's and
Nesterov's are the roots of their 2-step recurrences. Maps attract where every |multiplier| < 1,
flows where every Re eigenvalue < 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F

import numpy as np

from flowcore.engine.checks import positive
from flowcore.engine._field import _phi_values, _spectral
from flowcore.engine._loss import Loss
from flowcore.engine.krylov import Krylov, krylov_setting
from flowcore.problems.nn import is_jax, matrix_free_by_default, matrix_free_pf, polynomial_flow

__all__ = ["Model", "MODELS", "model", "pf_alpha", "bea_coefficients", "MAX_BEA_ORDER"]

MAX_BEA_ORDER = 64


def pf_alpha(z):
    """α_PF(z) = log(1 − z)/z elementwise: −1 at z = 0 (a series near 0, no cancellation), and
    log(z − 1) + iπ on the cut z > 1 (the paper's side; signed zeros cannot flip it). A sympy
    argument gives the sympy expression."""
    if _is_symbolic(z):
        import sympy as sp
        return sp.log(1 - z) / z
    z = np.asarray(z)
    if np.iscomplexobj(z):
        # +0 imaginary parts: the +iπ side (a −0 would otherwise select −iπ)
        z = np.where(z.imag == 0, z.real + 0j, z)
    return _phi_values(z)


def bea_coefficients(order: int) -> tuple:
    """Coefficients of the principal BEA truncation −Σ_{p≤order} z^p/(p+1) (Theorem 3.1)."""
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or not 0 <= order <= MAX_BEA_ORDER:
        raise ValueError(f"order must be an integer in [0, {MAX_BEA_ORDER}], got {order!r} (the series "
                         "−Σ z^p/(p+1) converges only for |hλ| < 1, where the PF is its limit: use "
                         "fc.flows.pf for high orders)")
    return tuple(F(-1, p + 1) for p in range(order + 1))


def _is_symbolic(x):
    return type(x).__module__.startswith("sympy")


@dataclass(frozen=True)
class Model:
    """One model of GD. ``coefficients``: α(z) = Σ_p c_p z^p for the polynomial flows, exact
    Fractions (None for the PF and the maps); ``nonprincipal``: c in the term c·h²·T[g, g]; ``method``: the
    :func:`flowcore.descend` method of a map."""
    name: str
    kind: str                      # 'map' or 'flow'
    summary: str
    coefficients: tuple | None = None
    nonprincipal: F = F(0)
    method: str | None = None

    @property
    def is_map(self):
        return self.kind == "map"

    def alpha(self, z, order=None):
        """α(z) of a flow (numbers, arrays or sympy)."""
        if self.is_map:
            raise ValueError(f"{self.name} is a map; only flows have α(z)")
        if self.name in ("pf", "pf_np3"):
            return pf_alpha(z)
        c = self._coefficients(order)                  # exact: sympy keeps 1/3 as 1/3
        if not _is_symbolic(z):
            c = [float(v) for v in c]
        out = 0
        for p in range(len(c) - 1, -1, -1):          # Horner
            out = out * z + c[p]
        return out if _is_symbolic(z) else np.asarray(out + 0 * np.asarray(z))

    def _coefficients(self, order):
        if self.name == "bea":
            if order is None:
                raise ValueError("the bea flow needs order=n")
            return bea_coefficients(order)
        return self.coefficients

    def build(self, loss: Loss, lr: float, order: int | None = None, branch: str = "track",
              krylov=None):
        """The flow's field for ``loss`` at learning rate ``lr`` (a SpectralFlow; for a JAX loss and a
        polynomial α, a field of Hessian–vector products: fc.nn.polynomial_flow; for
        the PF of a JAX loss, matrix-free (fc.nn.matrix_free_pf) when ``krylov`` or, by default, above
        fc.nn.KRYLOV_MIN_DIM parameters)."""
        if self.is_map:
            raise ValueError(f"{self.name} is a map: run it with fc.descend(loss, theta0, lr, steps, "
                             f"method={self.method!r})")
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a flowcore.Loss (fc.losses.* or fc.Loss.from_expr), "
                            f"got {type(loss).__name__}")
        lr = positive(lr, "lr")
        np_coef = float(self.nonprincipal) * lr * lr
        if self.name in ("pf", "pf_np3"):
            if branch not in ("track", "principal"):
                raise ValueError(f"branch must be 'track' or 'principal', got {branch!r}")
            name = "pf+np3" if self.name == "pf_np3" else "pf"
            krylov = krylov_setting(krylov)
            if krylov is None and matrix_free_by_default(loss):
                krylov = Krylov()
            if krylov:
                if not is_jax(loss):
                    raise ValueError(f"krylov=True needs Hessian–vector products: {loss.name!r} is not a JAX loss "
                                     "(fc.Loss.from_jax, fc.nn.mlp)")
                return matrix_free_pf(loss, lr, np_coef, branch == "track", tol=krylov.tol, name=name)
            return _spectral(loss, lr, "pf", (), np_coef=np_coef, track=branch == "track", name=name)
        name = f"bea{order}" if self.name == "bea" else self.name
        coef = [float(c) for c in self._coefficients(order)]
        if is_jax(loss):          # H·v products (none for the NGF and PGF), never H, for a network
            return polynomial_flow(loss, lr, coef, name, np_coef)
        return _spectral(loss, lr, "poly", coef, np_coef=np_coef, name=name)

    def jacobian(self, lam, lr, beta: float = 0.9, order: int | None = None) -> tuple:
        """Eigenvalues (flows) or multipliers (maps) at a critical point, per Hessian eigenvalue
        λ; numbers or sympy symbols. DAL's rate depends on θ: it has no fixed-rate Jacobian."""
        h = lr
        sym = _is_symbolic(lam) or _is_symbolic(h)
        if self.name == "gd":
            return (1 - h * lam,)
        if self.name in ("heavy_ball", "nesterov"):
            # ρ² − (1 + β − hλ)ρ + β (heavy ball); ρ² − (1 + β)(1 − hλ)ρ + β(1 − hλ) (Nesterov)
            a, b = ((1 + beta - h * lam), beta) if self.name == "heavy_ball" else \
                ((1 + beta) * (1 - h * lam), beta * (1 - h * lam))
            if sym:
                import sympy as sp
                rho = sp.Symbol("rho")
                return tuple(sp.solve(rho ** 2 - a * rho + b, rho))
            return tuple(complex(r) if np.iscomplex(r) else float(np.real(r)) for r in np.roots([1, -a, b]))
        if self.is_map:
            raise ValueError(f"{self.name}'s learning rate depends on θ: no fixed-rate Jacobian")
        if self.name in ("pf", "pf_np3"):
            if sym:
                import sympy as sp
                return (sp.log(1 - h * lam) / h,)
            z = complex(h * lam)
            return (complex(np.log(complex(1 - z.real, -z.imag if z.imag != 0 else 0.0))) / h,)
        v = self.alpha(h * lam, order) * lam               # J = α(hH)H at g = 0
        if sym:
            return (v,)
        v = complex(v)
        return (v.real if v.imag == 0 else v,)


MODELS = {m.name: m for m in (
    Model("gd", "map", "gradient descent θ⁺ = θ − h∇E", method="gd"),
    Model("heavy_ball", "map", "heavy ball θ⁺ = θ − h∇E + β(θ − θ⁻)", method="heavy_ball"),
    Model("nesterov", "map", "Nesterov: y = θ + β(θ − θ⁻), θ⁺ = y − h∇E(y)", method="nesterov"),
    Model("dal", "map", "DAL-p: GD with h(θ) = 2/‖Hĝ‖^p", method="dal"),
    Model("ngf", "flow", "negative gradient flow θ' = −g", (F(-1),)),
    Model("pgf", "flow", "positive gradient flow θ' = +g", (F(1),)),
    Model("igr", "flow", "implicit gradient regularisation θ' = −(I + hH/2)g", (F(-1), F(-1, 2))),
    Model("third_order", "flow", "GD's modified equation to O(h³)", (F(-1), F(-1, 2), F(-1, 3)), F(-1, 12)),
    Model("bea", "flow", "principal BEA truncation of order n"),
    Model("pf", "flow", "principal flow θ' = log(I − hH)/(hH)·g"),
    Model("pf_np3", "flow", "principal flow + the third-order non-principal term", nonprincipal=F(-1, 12)),
)}
MAPS = tuple(k for k, m in MODELS.items() if m.is_map)
FLOWS = tuple(k for k, m in MODELS.items() if not m.is_map)


def model(name: str | Model) -> Model:
    """The registry entry of a model, or a ValueError with the closest names."""
    if isinstance(name, Model):
        return name
    if name not in MODELS:
        import difflib
        close = difflib.get_close_matches(str(name), MODELS, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (models: {', '.join(MODELS)})")
    return MODELS[name]
