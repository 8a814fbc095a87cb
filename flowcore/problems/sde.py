"""Stochastic differential equations dθ = f(θ) dt + G(θ) dW (integrated by ``fc.sde_solve``).

    sde = fc.SDE(fc.losses.double_well(), 0.5)           # dθ = −∇E dt + 0.5 dW
    sol = fc.sde_solve(sde, np.zeros((10_000, 2)), (0, 10), fc.EulerMaruyama(0.01), seed=1)

The drift is a loss (f = −∇E), a :class:`flowcore.DataLoss` (f = −∇ of its mean) or expressions;
the diffusion a number σ (G = σI), D numbers or expressions (diagonal G), a D×M matrix of them,
or :func:`data_noise` — SGD's gradient noise (η Σ(θ)/B)^{1/2} from the data, exactly (G is D×n:
no matrix square root). Schemes (fixed step dt): ``fc.EulerMaruyama(dt)`` (weak order 1) and
``fc.Weak2(dt)``, the simplified weak order-2 Taylor scheme (Kloeden & Platen §14.2) with its
derivatives from sympy. Each path reads its own Philox stream keyed by (seed, trajectory id): a
path is the same alone, in a batch and on any number of threads, and ``ids=[i]`` replays path i.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowcore.engine.checks import count, positive
from flowcore.engine._loss import Loss
from flowcore.engine._stochastic import NoiseProblem
from flowcore.problems.data import DataLoss

__all__ = ["SDE", "data_noise", "DataNoise"]



@dataclass(frozen=True)
class DataNoise:
    """SGD's gradient noise as a diffusion: G(θ) = c [∇ℓ_1 − ∇E, …, ∇ℓ_n − ∇E] with
    c² = lr·ν/(B n), so that G Gᵀ = lr ν Σ(θ)/B; ν = 1 with replacement, (n − B)/(n − 1) without."""
    data: object
    lr: float
    batch: int
    replace: bool

    @property
    def variance_factor(self):
        """lr ν / B: G Gᵀ = this × Σ(θ)."""
        n, B = self.data.n, self.batch
        nu = 1.0 if self.replace else (n - B) / (n - 1) if n > 1 else 0.0
        return self.lr * nu / B

    def __repr__(self):
        return (f"data_noise(lr={self.lr:g}, batch={self.batch}, {'with' if self.replace else 'without'} "
                f"replacement; n={self.data.n})")


def data_noise(data, lr, batch=1, replace=True):
    """The diffusion (lr ν Σ(θ)/B)^{1/2} of SGD with rate lr and batch B on a DataLoss (see DataNoise)."""
    if not isinstance(data, DataLoss):
        raise TypeError(f"data must be a flowcore.DataLoss, got {type(data).__name__}")
    lr = positive(lr, "lr")
    batch = count(batch, "batch", 1, data.n)
    return DataNoise(data, lr, batch, bool(replace))


class SDE:
    """dθ = f(θ) dt + G(θ) dW (Itô). See the module docstring for what drift and diffusion take."""

    def __init__(self, drift, diffusion, vars=None, name=None):
        from flowcore.engine.expressions import check_supported, parse, resolve_vars   # (sympy: loaded on first use)
        import sympy as sp
        self.data = None
        if isinstance(drift, DataLoss):
            self.data = drift
            drift = drift.loss
        if isinstance(drift, Loss):
            if drift.expr is None:
                raise ValueError(f"the drift's loss {drift.name!r} has no symbolic expression; use "
                                 "Loss.from_expr or the zoo")
            E, vs = drift.expr, drift.vars
            exprs = [-sp.diff(E, v) for v in vs]
            vars = vs if vars is None else vars
        else:
            items = [drift] if isinstance(drift, (str, sp.Basic)) else list(drift)
            exprs = [parse(e, f"drift[{k}]") for k, e in enumerate(items)]
        if isinstance(diffusion, DataNoise):
            self.noise = diffusion
            G = None
            if self.data is not None and diffusion.data is not self.data:
                raise ValueError("the drift and data_noise come from different DataLoss objects")
        else:
            self.noise = None
            G = self._matrix(diffusion, len(exprs), parse)
        free = [*exprs] + ([] if G is None else list(G))
        vs, allx = resolve_vars(free, vars, "SDE")
        if len(vs) != len(exprs):
            raise ValueError(f"the drift has {len(exprs)} components but there are {len(vs)} variables "
                             f"{[str(v) for v in vs]}; pass vars= with one name per component")
        for k, e in enumerate(allx):
            check_supported(e, "SDE")
        self.vars = tuple(vs)
        self.drift = tuple(allx[:len(exprs)])
        self.diffusion = None if G is None else sp.Matrix(len(exprs), G.shape[1], allx[len(exprs):])
        if self.noise is not None and tuple(self.noise.data.vars) != self.vars:
            raise ValueError(f"data_noise's parameters {self.noise.data.vars} differ from the SDE's {self.vars}")
        self.name = name or "SDE"

    @staticmethod
    def _matrix(diffusion, D, parse):
        import sympy as sp
        if isinstance(diffusion, (int, float, np.floating, np.integer, str, sp.Basic)):
            s = parse(diffusion if not isinstance(diffusion, (np.floating, np.integer)) else float(diffusion),
                      "diffusion")
            return sp.eye(D) * s
        arr = np.asarray(diffusion, dtype=object)
        if arr.ndim == 1 and arr.shape[0] == D:
            return sp.diag(*[parse(float(v) if isinstance(v, (np.floating, np.integer)) else v,
                                   f"diffusion[{k}]") for k, v in enumerate(arr)])
        if arr.ndim == 2 and arr.shape[0] == D and arr.shape[1] >= 1:
            return sp.Matrix(D, arr.shape[1], [parse(float(v) if isinstance(v, (np.floating, np.integer)) else v,
                                                     "diffusion") for v in arr.ravel()])
        raise ValueError(f"diffusion must be a number, {D} entries (diagonal), a {D}×M matrix or "
                         f"fc.data_noise(...); got shape {arr.shape}")

    @property
    def dim(self):
        return len(self.vars)

    @property
    def noise_dim(self):
        return self.noise.data.n if self.noise is not None else self.diffusion.shape[1]

    def __repr__(self):
        g = repr(self.noise) if self.noise is not None else f"G {self.diffusion.shape[0]}×{self.diffusion.shape[1]}"
        name = "" if self.name == "SDE" else f"{self.name}: "
        return f"SDE({name}D={self.dim}, drift {list(self.drift)}, {g})"

    def _repr_latex_(self):
        import sympy as sp
        f = sp.latex(sp.Matrix(self.drift))
        g = r"\left(\tfrac{\eta\nu}{B}\Sigma(\theta)\right)^{1/2}" if self.noise is not None else sp.latex(self.diffusion)
        return rf"$d\theta = {f}\,dt + {g}\,dW$"

    def _problem(self, scheme):
        import sympy as sp
        xs = sp.symbols(f"x_0:{self.dim}")
        sub = dict(zip(self.vars, xs))
        drift = tuple(e.xreplace(sub) for e in self.drift)
        if self.noise is not None:
            if scheme != "euler_maruyama":
                raise ValueError("data_noise runs with method='euler_maruyama' (its weak order-2 terms need "
                                 "derivatives of Σ(θ)^{1/2}); take dt well below lr, or give the diffusion in closed form")
            base = self.noise.data._noise_problem("sde")
            return NoiseProblem("sde", self.dim, base.example_grad, base.nparam, drift, (), self.noise_dim,
                                scheme)
        M = self.diffusion.shape[1]
        if not self.diffusion.free_symbols:
            # a constant G travels at run time (in the data slot): a new σ never recompiles;
            # only its pattern of zeros is compiled in
            G = tuple(sp.Integer(0) if self.diffusion[q, j] == 0 else sp.Symbol(f"G_{q}_{j}")
                      for q in range(self.dim) for j in range(M))
        else:
            G = tuple(e.xreplace(sub) for e in self.diffusion)
        return NoiseProblem("sde", self.dim, (), 0, drift, G, M, scheme, constant_diffusion=True
                            if not self.diffusion.free_symbols else False)

    def _runtime_data(self):
        """What the kernel reads from its data slot: the data rows (data noise), G (constant G)."""
        if self.noise is not None:
            return self.noise.data.data
        if not self.diffusion.free_symbols:
            return np.ascontiguousarray(np.array(self.diffusion.tolist(), dtype=np.float64).ravel())
        return np.zeros(1)
