"""Stochastic differential equations dθ = f(θ) dt + G(θ) dW, integrated in batches.

    sde = fc.SDE(fc.losses.double_well(), 0.5)           # dθ = −∇E dt + 0.5 dW
    sol = fc.sde_solve(sde, np.zeros((10_000, 2)), (0, 10), dt=0.01, seed=1)

The drift is a loss (f = −∇E), a :class:`flowcore.DataLoss` (f = −∇ of its mean) or expressions;
the diffusion a number σ (G = σI), D numbers or expressions (diagonal G), a D×M matrix of them,
or :func:`data_noise` — SGD's gradient noise (η Σ(θ)/B)^{1/2} from the data, exactly (G is D×n:
no matrix square root). Schemes (fixed step dt): ``"euler_maruyama"`` (weak order 1) and
``"weak2"``, the simplified weak order-2 Taylor scheme (Kloeden & Platen §14.2) with its
derivatives from sympy. Each path reads its own Philox stream keyed by (seed, trajectory id): a
path is the same alone, in a batch and on any number of threads, and ``ids=[i]`` replays path i.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowcore.checks import INT32_MAX, positive, threads as _threads
from flowcore._status import Interrupted, Status
from flowcore.methods import COMPUTE, Compute, EulerMaruyama, Weak2

__all__ = ["SDE", "data_noise", "DataNoise", "sde_solve", "SDESolution"]

MAX_PATH_BYTES = 8 * 2**30


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
    from flowcore.data import DataLoss
    from flowcore.checks import count
    if not isinstance(data, DataLoss):
        raise TypeError(f"data must be a flowcore.DataLoss, got {type(data).__name__}")
    lr = positive(lr, "lr")
    batch = count(batch, "batch", 1, data.n)
    return DataNoise(data, lr, batch, bool(replace))


class SDE:
    """dθ = f(θ) dt + G(θ) dW (Itô). See the module docstring for what drift and diffusion take."""

    def __init__(self, drift, diffusion, vars=None, name=None):
        import sympy as sp
        from flowcore._loss import Loss
        from flowcore.data import DataLoss
        from flowcore.expressions import check_supported, parse, resolve_vars
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
        from flowcore._stochastic import NoiseProblem
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


@dataclass(repr=False)
class SDESolution:
    """Result of :func:`sde_solve`: t [T], y [N, T, D] (NaN after a path stops), status [N],
    nsteps [N], last [N, D] (each path's last state), seed (replay with seed=, ids=)."""
    t: np.ndarray
    y: np.ndarray
    status: np.ndarray
    nsteps: np.ndarray
    last: np.ndarray
    method: str
    seed: int

    @property
    def message(self):
        return Status.summary(self.status)

    def __repr__(self):
        N, T, D = self.y.shape
        return f"SDESolution({self.method}: {N} paths × {T} times × D={D}; {self.message})"


def sde_solve(sde: SDE, theta0, t_span, method: EulerMaruyama | Weak2, t_eval=None, seed=None, ids=None,
              escape_radius=1e12, compute: Compute = COMPUTE) -> SDESolution:
    """Integrate ``sde`` from every row of theta0 [N, D] over t_span = (t0, T) by ``method``,
    :class:`~flowcore.EulerMaruyama` (dt) or :class:`~flowcore.Weak2` (dt), whose fixed step dt
    must divide T − t0 a whole number of times. ``t_eval``: the times to record, on the step grid
    (default every step). ``compute``: device and threads. Path i draws its noise from
    its own Philox stream keyed by (seed, ids[i]) — seed None picks a fresh one, kept in the
    result.
    A path stops with Status.ESCAPED beyond escape_radius and NONFINITE on a non-finite state;
    the others go on."""
    from flowcore import _stochastic as S
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a flowcore.SDE, got {type(sde).__name__}")
    if not isinstance(method, (EulerMaruyama, Weak2)):
        raise TypeError(f"method must be fc.EulerMaruyama(dt) or fc.Weak2(dt), got {method!r}")
    if not isinstance(compute, Compute):
        raise TypeError(f"compute must be a flowcore.Compute(device=, threads=), got {compute!r}")
    dt, threads, device = method.dt, compute.threads, compute.device
    th = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    if th.ndim != 2 or th.shape[1] != sde.dim:
        raise ValueError(f"theta0 must have shape [N, {sde.dim}] (or [{sde.dim}]), got {np.shape(theta0)}")
    N = th.shape[0]
    try:
        t0, t1 = (float(v) for v in t_span)
    except (TypeError, ValueError):
        raise ValueError(f"t_span must be (t0, T), got {t_span!r}") from None
    nst = (t1 - t0) / dt
    steps = int(round(nst))
    if not (t1 > t0) or abs(nst - steps) > 1e-9 * max(1.0, nst) or steps > INT32_MAX:
        raise ValueError(f"t_span = ({t0}, {t1}) must be a whole number of steps dt = {dt} (T > t0)")
    if t_eval is None:
        save = np.arange(steps + 1, dtype=np.int64)
    else:
        te = np.asarray(t_eval, dtype=np.float64).ravel()
        k = np.round((te - t0) / dt)
        if np.any(np.abs((te - t0) / dt - k) > 1e-9 * np.maximum(1.0, np.abs(k))) or np.any(k < 0) \
                or np.any(k > steps) or np.any(np.diff(k) <= 0):
            raise ValueError("t_eval must be increasing times on the step grid t0 + k·dt within t_span")
        save = k.astype(np.int64)
    if N * len(save) * sde.dim * 8 > MAX_PATH_BYTES:
        raise ValueError(f"recording {len(save)} times of {N} paths needs "
                         f"{N * len(save) * sde.dim * 8 / 2**30:.0f} GiB: pass fewer t_eval")
    seed, key, ids = S.seed_and_ids(seed, ids, N)
    radius = np.inf if escape_radius == np.inf else positive(escape_radius, "escape_radius")
    scale = np.sqrt(sde.noise.variance_factor / sde.noise.data.n) if sde.noise is not None else 0.0
    r = np.array([dt, radius, scale], dtype=np.float64)
    n = np.array([steps, len(save), *key, sde.noise.data.n if sde.noise is not None else 0], dtype=np.int64)
    data = sde._runtime_data()
    dev = S.pick_device(device, N)
    out, last, status, nsteps, interrupted = S.run(sde._problem(method.name), dev, r, n, save, data, ids,
                                                   np.ascontiguousarray(th), threads=_threads(threads, -(-N // 64)))
    sol = SDESolution(t0 + save * dt, out, status, nsteps, last, method.name, seed)
    if interrupted:
        raise Interrupted(sol, "fc.sde_solve")
    return sol
