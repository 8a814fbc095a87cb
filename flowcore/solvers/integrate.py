"""``fc.solve``: integrate one vector field from many starting points at once."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from flowcore.engine.checks import positive, threads as _threads
from flowcore.engine._field import Field
from flowcore.engine._solve import _solve
from flowcore.engine.progress import Progress
from flowcore.engine._status import Interrupted, Status
from flowcore.solvers.methods import COMPUTE, DOPRI5, Adaptive, Compute, FixedStep
from flowcore.engine import _kernels

__all__ = ["solve", "Solution", "compiled"]


@dataclass(repr=False)
class Solution:
    """Result of :func:`solve`.

    t [T]: output times; y [N, T, D]: states (NaN after a trajectory stops);
    status [N] (:class:`Status`), nfev / nsteps / nreject [N]: per-trajectory counters.
    """
    t: np.ndarray
    y: np.ndarray
    status: np.ndarray
    nfev: np.ndarray
    nsteps: np.ndarray
    nreject: np.ndarray
    method: str
    device: str = "cpu"

    @property
    def message(self):
        return Status.summary(self.status)

    def __repr__(self):
        N, T, D = self.y.shape
        nf = f", nfev median {int(np.median(self.nfev))}" if N else ""
        return f"Solution({self.method}: {N} trajectories × {T} times × D={D}; {self.message}{nf})"

    @property
    def success(self):
        return bool(np.all(self.status == Status.OK))


def _times(t_span, t_eval):
    """(t0, output times). Every flow starts at t = 0: without ``t_span`` the start is 0 and
    ``t_eval`` may begin later (never a silent zero-length run from t_eval[0])."""
    if t_span is not None:
        try:
            t0, t1 = (float(v) for v in t_span)
        except (TypeError, ValueError):
            raise ValueError(f"t_span must be (t0, t1), got {t_span!r}") from None
        if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
            raise ValueError(f"t_span must be finite with t1 > t0, got {t_span!r}")
    if t_eval is None:
        if t_span is None:
            raise ValueError("give t_span=(t0, t1) or t_eval=[...] (times from t = 0)")
        return t0, np.array([t0, t1])
    te = np.asarray(t_eval)
    if te.ndim > 1:
        raise ValueError(f"t_eval must be a 1-D array of times, got shape {te.shape}")
    if np.iscomplexobj(te) or not np.issubdtype(te.dtype, np.number):
        raise TypeError("t_eval must hold real numbers")
    te = te.astype(np.float64).reshape(-1)
    if te.size == 0 or not np.all(np.isfinite(te)):
        raise ValueError("t_eval must be a non-empty array of finite times")
    if np.any(np.diff(te) <= 0):
        raise ValueError("t_eval must be strictly increasing (backward integration is not supported)")
    if t_span is None:
        t0 = 0.0
        if te[0] < 0:
            raise ValueError(f"t_eval starts at {te[0]} < 0; without t_span the integration starts "
                             "at t = 0: pass t_span=(t0, t1) to start elsewhere")
    elif te[0] < t0 or te[-1] > t1:
        raise ValueError(f"t_eval must lie within t_span={tuple(t_span)}")
    return t0, te


def solve(flow: Field, theta0: ArrayLike, t_span: tuple[float, float] | None = None,
          t_eval: ArrayLike | None = None, method: Adaptive | FixedStep = DOPRI5,
          escape_radius: float = np.inf, rest_tol: float = 0.0, compute: Compute = COMPUTE,
          progress: bool | None = None) -> Solution:
    """Integrate θ' = flow(θ) from every row of theta0 [N, D] (or [D]).

    ``method``: an integrator value — :func:`~flowcore.Dopri5` (default), :func:`~flowcore.Dop853`
    or any :class:`~flowcore.Adaptive` tableau (rtol, atol, dt0, dense, max_steps: per-trajectory
    PI step control, Hairer's initial step, error norm on |·| so complex states work), or
    :func:`~flowcore.RK4`, :func:`~flowcore.Euler`, :func:`~flowcore.Midpoint`,
    :func:`~flowcore.Heun` and any :class:`~flowcore.FixedStep` tableau (dt). Outputs at
    ``t_eval`` come from the method's continuous extension when it has one (dopri5,
    ``dense=True``), so dense t_eval costs no extra steps; otherwise (dop853, fixed-step
    methods, ``dense=False``) steps land exactly on each output time. The end of the span is
    always landed on.

    Complex fields (the PF) or complex theta0 run in complex128; real fields in float64. For
    the tracked PF the branch state of log(1 − hλ) lives here, per trajectory, and advances
    only on accepted steps. Each trajectory ends with its own status: OK, ESCAPED (‖θ‖ >
    escape_radius), MAX_STEPS (accepted steps), STEP_UNDERFLOW, NONFINITE, SINGULAR (the PF
    at hλ = 1). Ctrl-C stops the run within a step and raises :class:`flowcore.Interrupted`,
    whose ``.partial`` Solution keeps the finished trajectories (the others INTERRUPTED).
    ``compute``: threads (None: all cores; results do not depend on it), chunk (trajectories
    per chunk, default 4096) and device: 'cpu', 'gpu' or None (the GPU when one is usable and
    there are at least 10⁴ starts). ``progress=True`` shows a tqdm bar over chunks; ``None``
    (default) shows one once the measured rate says the rest takes more than a few seconds.

    A field known symbolically (Field.from_expr; the spectral flows of a Loss.from_expr or zoo
    loss, the PF for D ≤ 2 or with a diagonal Hessian) runs as one compiled kernel with
    everything inlined, compiled on first use and cached; other fields (Python callables, the
    PF for D > 2 with a non-diagonal Hessian) run on the CPU through the generic loop.
    ``rest_tol`` > 0 ends a trajectory once ‖f‖∞ ≤ rest_tol (1 + ‖θ‖∞) has held for 8 accepted
    steps (compiled kernels only); its later outputs repeat its last state.
    """
    if not isinstance(flow, Field):
        raise TypeError(f"flow must be a flowcore Field (fc.flows.* or fc.Field.from_expr), "
                        f"got {type(flow).__name__}")
    if not isinstance(method, (Adaptive, FixedStep)):
        raise TypeError(f"method must be an integrator value (fc.Dopri5(rtol=...), fc.Dop853(), fc.RK4(dt) ...), "
                        f"got {method!r}")
    if not isinstance(compute, Compute):
        raise TypeError(f"compute must be a flowcore.Compute(device=, threads=, chunk=), got {compute!r}")
    tab = method.tableau
    A, b, e, e3, P = tab.floats()
    adaptive = isinstance(method, Adaptive)
    rtol, atol = (method.rtol, method.atol) if adaptive else (1e-8, 1e-10)     # (unread by fixed steps)
    dt = (method.dt0 or 0.0) if adaptive else method.dt
    dense = method.dense if adaptive else True
    max_steps, threads, device = method.max_steps, compute.threads, compute.device
    chunk = compute.chunk_or(4096)
    t0, tout = _times(t_span, t_eval)
    radius = np.inf if escape_radius == np.inf else positive(escape_radius, "escape_radius")
    rest_tol = 0.0 if rest_tol == 0 else positive(rest_tol, "rest_tol")
    _threads(threads)                          # checked before any work
    th = np.asarray(theta0)
    if th.dtype == object or not np.issubdtype(th.dtype, np.number):
        raise TypeError(f"theta0 must be a numeric array [N, {flow.dim}]")
    th = np.atleast_2d(th)
    if th.ndim != 2 or th.shape[1] != flow.dim:
        raise ValueError(f"theta0 must have shape [N, {flow.dim}] (or [{flow.dim}]), got {np.shape(theta0)}")
    cplx = flow.is_complex or np.iscomplexobj(th)
    y0 = np.ascontiguousarray(th, dtype=np.complex128 if cplx else np.float64)
    run = _runner(flow, cplx, tab, dense, _kernels.choose_device(device, len(y0)), rest_tol)

    # outputs after t0; the first output is y0 itself when t_eval starts at t0
    first_is_t0 = tout[0] == t0
    targets = np.ascontiguousarray(tout[1:] if first_is_t0 else tout)
    N = len(y0)
    Y = np.full((N, len(tout), flow.dim), complex(np.nan, np.nan) if cplx else np.nan, dtype=y0.dtype)
    status = np.full(N, Status.INTERRUPTED, dtype=np.int8)
    counters = [np.zeros(N, dtype=np.int64) for _ in range(3)]
    if first_is_t0:
        Y[:, 0] = y0
    if run.device == "gpu":
        chunk = max(chunk, _kernels.GPU_CHUNK)
    bar = Progress(N, f"solve {tab.name}", "traj", progress)
    interrupted = False
    try:
        for start in range(0, N, chunk):
            sl = slice(start, min(N, start + chunk))
            if len(targets) == 0:
                status[sl] = Status.OK
                continue
            nthreads = _threads(threads, -(-(sl.stop - sl.start) // 32))
            Yc, st, nf, ns, nr, interrupted = run(
                y0[sl], t0, targets, dt, rtol, atol, int(max_steps), radius, nthreads)
            Y[sl, 1 if first_is_t0 else 0:] = Yc
            status[sl] = st
            for c, v in zip(counters, (nf, ns, nr)):
                c[sl] = v
            bar.update(sl.stop - sl.start)
            if interrupted:
                break
    except KeyboardInterrupt:
        interrupted = True        # between chunks: the chunks not run keep INTERRUPTED and NaN
    finally:
        bar.close()
    sol = Solution(tout, Y, status, *counters, tab.name, run.device)
    if interrupted:
        raise Interrupted(sol, "fc.solve")
    return sol


def compiled(flow: Field) -> bool:
    """Does ``flow`` run as a compiled kernel (everything inlined; GPU-capable; rest_tol)?
    True for Field.from_expr and the spectral flows of a loss with a sympy expression (the PF
    for D ≤ 2, or any D when the Hessian is diagonal: a separable loss); False for Python
    callables, fc.flows.spectral and the PF for D > 2 with a non-diagonal Hessian."""
    try:
        _kernels.problem(flow)
    except _kernels.NoKernel:
        return False
    return True


def _runner(flow, cplx, tab, dense, device, rest_tol):
    """run(y0, t0, targets, dt, rtol, atol, max_steps, radius, threads) on the chosen target:
    the problem's compiled kernel when it has one, else the generic function-pointer loop."""
    lr = getattr(flow, "lr", 0.0)
    np_coef = getattr(flow, "np_coef", 0.0)
    try:
        problem = _kernels.problem(flow, cplx)
    except _kernels.NoKernel as why:
        if device == "gpu":
            raise ValueError(f"device='gpu': {flow.name!r} cannot run on the GPU: {why}") from None
        if device is None and _kernels.gpu_usable(None):
            print(f"flowcore: {flow.name!r} runs on the CPU: {why}", file=sys.stderr)
        if rest_tol:
            raise ValueError(f"rest_tol needs a compiled kernel, and {flow.name!r} has none: {why}")
        A, b, e, e3, P = tab.floats()

        def generic(y0, t0, targets, dt, rtol, atol, max_steps, radius, threads):
            return _solve(flow, y0, t0, targets, A, b, e, e3, P if dense else None,
                          tab.error_order or tab.order or 1, tab.error_order or 0, tab.beta, dt,
                          rtol, atol, max_steps, radius, threads)
        generic.device = "cpu"
        return generic
    gpu = _kernels.gpu_usable(device)
    solver = (_kernels.gpu_solver if gpu else _kernels.host_solver)(problem, tab, dense)

    def compiled(y0, t0, targets, dt, rtol, atol, max_steps, radius, threads):
        r, n = _kernels.pack_args(lr, np_coef, t0, dt, rtol, atol, radius, rest_tol, max_steps,
                                  len(targets), _kernels.REST_WINDOW)
        run = _kernels.run_gpu if gpu else _kernels.run_host
        return run(solver, r, n, targets, y0, threads)
    compiled.device = "gpu" if gpu else "cpu"
    return compiled
