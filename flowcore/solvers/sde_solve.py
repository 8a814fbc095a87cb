"""``fc.sde_solve``: fixed-step SDE schemes from many starts at once, each path on its own
counter-based noise stream (see :class:`flowcore.SDE` for the problems)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowcore.engine.checks import INT32_MAX, positive, threads as _threads
from flowcore.engine._status import Interrupted, Status
from flowcore.engine import _stochastic as S
from flowcore.problems.sde import SDE
from flowcore.solvers.methods import COMPUTE, Compute, EulerMaruyama, Weak2

__all__ = ["sde_solve", "SDESolution"]

MAX_PATH_BYTES = 8 * 2**30


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
