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
from flowcore.engine.checks import count, positive

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
    name = f"SME-{order} (lr={noise.lr:g}, B={noise.batch})"
    diffusion = noise
    if data.example.is_polynomial(*data.data_vars):
        sigma = data.covariance_expr()
        if not sigma.free_symbols:
            cov = np.array(sigma.tolist(), dtype=float) * noise.variance_factor
            w, V = np.linalg.eigh(cov)          # G = V √w: G Gᵀ = cov, also when cov is singular
            diffusion = (V * np.sqrt(np.clip(w, 0, None))).tolist()
    return fc.SDE(drift, diffusion, vars=data.vars, name=name)


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
    lr = positive(lr, "lr")
    batch = count(batch, "batch", 1, data.n)
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


# ------------------------------------------------------------------ the tour's experiments
def _centred(values):
    v = np.asarray(values, dtype=float)
    return v - v.mean()


def noisy_data_loss(energy, var="x", n=200, spread=1.0, seed=0):
    """ℓ(x; ξ) = E(x) + ξ x with ξ centred (mean exactly 0 up to rounding) and of variance
    spread²: the mean loss is E and the gradient noise is constant, Σ = spread²."""
    xi = np.random.default_rng(seed).normal(size=n)
    xi = _centred(xi) / xi.std() * spread
    return fc.DataLoss.from_expr(f"{energy} + xi*{var}", {"xi": xi}, vars=(var,))


def first_passage(t, paths, level):
    """The first recorded time each path is above level (inf: never), paths [N, T]."""
    above = paths > level
    hit = above.any(axis=1)
    return np.where(hit, t[np.argmax(above, axis=1)], np.inf)


def exit_rate(times, horizon):
    """Escapes per unit time with censoring: (number escaped) / (total time spent waiting)."""
    done = np.isfinite(times)
    return done.sum() / np.where(done, times, horizon).sum()


def mean_first_passage(energy_fn, sigma2, start, level, low=-4.0, points=20001):
    """Exact mean first-passage time of dX = −E′dt + σ dW from start to level (> start), reflected
    far below: (2/σ²) ∫_start^level e^{2E(y)/σ²} ∫_{low}^y e^{−2E(z)/σ²} dz dy (trapezoids)."""
    from scipy.integrate import cumulative_trapezoid, trapezoid
    z = np.linspace(low, level, points)
    e = energy_fn(z)
    shift = e.min()
    inner = cumulative_trapezoid(np.exp(-2 * (e - shift) / sigma2), z, initial=0.0)
    keep = z >= start
    return 2 / sigma2 * trapezoid(np.exp(2 * (e[keep] - shift) / sigma2) * inner[keep], z[keep])


def double_well_sgd(lr=0.1, batches=(1, 2, 4), spread=1.8, horizon=1000.0, runs=500, seed=0):
    """SGD on ℓ = (x² − 1)²/4 + ξx (Σ = spread², barrier 1/4) against its SME-1, the SDE
    dX = −E′dt + (lr·spread²/B)^{1/2} dW, at several batch sizes: stationary densities (against
    exp(−2E/σ²)) and escape rates from the well at x = −1 to the other, x = +1 (against the exact
    mean first-passage time of the SDE). The SDE (step lr/5) is read at SGD's steps, as SGD is:
    excursions past x = 1 shorter than a step go unseen by both."""
    energy = "(x**2 - 1)**2/4"
    E = lambda x: (x**2 - 1)**2 / 4     # noqa: E731
    data = noisy_data_loss(energy, spread=spread, seed=seed)
    steps = int(round(horizon / lr))
    out = {"energy": energy, "lr": lr, "spread": spread, "horizon": horizon, "runs": runs, "batches": {}}
    x0 = np.full((runs, 1), -1.0)
    edges = np.linspace(-2.2, 2.2, 89)
    for B in batches:
        sde = sme(data, lr, B, order=1)
        sigma2 = float(sde.diffusion[0, 0]) ** 2
        run = fc.descend(data, x0, fc.SGD(lr, batch=B, seed=seed + B), steps)
        t_sgd = np.arange(steps + 1) * lr
        dt = lr / 5
        sol = fc.sde_solve(sde, x0, (0, steps * lr), fc.EulerMaruyama(dt), t_eval=t_sgd, seed=seed + 100 + B)
        burn = t_sgd > 50
        row = {"sigma2": sigma2, "sgd_status": run.message, "sde_status": sol.message, "dt": dt}
        for name, t, paths in (("sgd", t_sgd, run.iterates[..., 0]), ("sde", sol.t, sol.y[..., 0])):
            passage = first_passage(t, paths, 1.0)
            row[name] = {"density": np.histogram(paths[:, burn].ravel(), edges, density=True)[0],
                         "exit_rate": exit_rate(passage, t[-1]), "escaped": int(np.isfinite(passage).sum()),
                         "mean_x2": float(np.mean(paths[:, burn] ** 2))}
        xs = 0.5 * (edges[1:] + edges[:-1])
        gibbs = np.exp(-2 * E(xs) / sigma2)
        row["gibbs"] = gibbs / (gibbs.sum() * (edges[1] - edges[0]))
        row["exact_exit_rate"] = 1 / mean_first_passage(E, sigma2, -1.0, 1.0)
        out["batches"][B] = row
    out["edges"] = edges
    return out


def temperature(lrs=(0.01, 0.02, 0.04), batches=(1, 2, 4, 8), spread=4.0, horizon=200.0, runs=400, seed=0):
    """Which minimum SGD ends in, sharp (x ≈ −1, E″ ≈ 15, deeper) or flat (x ≈ 2, E″ ≈ 0.6), as the
    noise temperature σ² = lr·spread²/B varies, from starts spread over [−3, 5]; the SME-1 (the
    same σ²) beside it. The fraction in the flat minimum against lr/B."""
    energy = "x**2/20 - 3*exp(-25*(x + 1)**2/2)/5 - exp(-(x - 2)**2/2)/2"
    data = noisy_data_loss(energy, spread=spread, seed=seed)
    saddle = _saddle_between(data.loss, -1.0, 2.0)
    x0 = np.linspace(-3, 5, runs)[:, None]
    points = []
    for lr in lrs:
        for B in batches:
            run = fc.descend(data, x0, fc.SGD(lr, batch=B, seed=seed, every=int(round(horizon / lr))), int(round(horizon / lr)))
            points.append({"lr": lr, "batch": B, "lr_over_batch": lr / B, "sigma2": lr * spread**2 / B,
                           "flat": float(np.mean(run.final[:, 0] > saddle)), "status": run.message})
    ratios = np.geomspace(min(p["lr_over_batch"] for p in points), max(p["lr_over_batch"] for p in points), 8)
    sde_rows = []
    for r in ratios:
        sigma = float(np.sqrt(r) * spread)
        sol = fc.sde_solve(fc.SDE(data.loss, sigma), x0, (0, horizon), fc.EulerMaruyama(0.005), t_eval=[horizon], seed=seed + 1)
        sde_rows.append({"lr_over_batch": float(r), "sigma2": sigma**2, "flat": float(np.mean(sol.last[:, 0] > saddle)),
                         "equilibrium": _gibbs_share(data.loss, sigma**2, saddle)})
    return {"energy": energy, "spread": spread, "horizon": horizon, "runs": runs, "saddle": saddle,
            "sgd": points, "sde": sde_rows}


def _gibbs_share(loss, sigma2, saddle, low=-8.0, high=12.0, points=40001):
    """∫_{x > saddle} e^{−2E/σ²} / ∫ e^{−2E/σ²}: the stationary share of the flat side."""
    x = np.linspace(low, high, points)
    e = loss.value(x[:, None])
    w = np.exp(-2 * (e - e.min()) / sigma2)
    return float(w[x > saddle].sum() / w.sum())


def _saddle_between(loss, a, b):
    """The local maximum of a 1-D loss between a and b (bisection on E′)."""
    from scipy.optimize import brentq
    grid = np.linspace(a, b, 2001)
    g = loss.grad(grid[:, None])[:, 0]
    idx = [i for i in range(len(grid) - 1) if g[i] > 0 >= g[i + 1]]
    if len(idx) != 1:
        raise ValueError(f"expected one maximum between {a} and {b}, found {len(idx)}")
    i = idx[0]
    return brentq(lambda x: loss.grad([[x]])[0, 0], grid[i], grid[i + 1])


def sme_weak_error(a=2.0, batch=2, w0=1.5, lrs=(0.2, 0.1, 0.05, 0.025), horizon=1.0, runs=1_000_000, seed=0):
    """Weak error of SME-1 and SME-2 against SGD on ℓ = a(w − ξ)²/2 at t = horizon. SGD's moments
    in closed form (m⁺ = ξ̄ + (1 − ηa)(m − ξ̄), V⁺ = (1 − ηa)²V + η²a²s²/B) and by Monte Carlo
    (``runs`` seeds); the SMEs' by their moment ODEs (linear drift, constant noise), solved by
    fc.solve. Error of E w²."""
    import sympy as sp
    xs = np.random.default_rng(seed).normal(0.3, 1.0, size=30)
    data = fc.DataLoss.from_expr(f"{a}*(w - x)**2/2", {"x": xs})
    xbar, s2 = xs.mean(), xs.var()
    w, V = sp.symbols("w V")
    rows = []
    for eta in lrs:
        k = int(round(horizon / eta))
        m, v = [w0], [0.0]
        for _ in range(k):
            m.append(xbar + (1 - eta * a) * (m[-1] - xbar))
            v.append((1 - eta * a) ** 2 * v[-1] + eta**2 * a**2 * s2 / batch)
        exact = np.array(m) ** 2 + np.array(v)
        run = fc.descend(data, np.full((runs, 1), w0), fc.SGD(eta, batch=batch, seed=seed + k), k)
        mc = (run.iterates[..., 0] ** 2)
        row = {"lr": eta, "steps": k, "t": (np.arange(k + 1) * eta), "sgd_exact": exact,
               "sgd_mc": mc.mean(axis=0), "sgd_mc_se": mc.std(axis=0) / np.sqrt(runs)}
        for order in (1, 2):
            s = sme(data, eta, batch, order)
            f = s.drift[0].xreplace({s.vars[0]: w})
            G2 = float(s.diffusion[0, 0]) ** 2
            ode = fc.Field.from_expr([f, 2 * sp.diff(f, w) * V + G2], vars=(w, V))
            y = fc.solve(ode, [w0, 0.0], (0, k * eta), t_eval=row["t"], method=fc.Dopri5(rtol=1e-12, atol=1e-14)).y[0]
            row[f"sme{order}"] = y[:, 0] ** 2 + y[:, 1]
            row[f"sme{order}_error"] = float(abs(row[f"sme{order}"][-1] - exact[-1]))
        row["mc_error"] = float(abs(row["sgd_mc"][-1] - exact[-1]))
        rows.append(row)
    small = np.argsort(lrs)[:3]            # the asymptotic regime: the three smallest rates
    slopes = {o: float(np.polyfit(np.log(np.asarray(lrs)[small]),
                                  np.log([rows[i][f"sme{o}_error"] for i in small]), 1)[0]) for o in (1, 2)}
    return {"a": a, "batch": batch, "w0": w0, "horizon": horizon, "runs": runs, "rows": rows, "slopes": slopes}
