"""Discrete optimizers (``fc.descend``) and diagnostics along their runs."""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from flowcore.checks import INT32_MAX, count, positive, threads as _threads
from flowcore._descend import METHODS, _cluster_rows, _descend
from flowcore import _kernels
from flowcore._loss import Loss
from flowcore.progress import Progress
from flowcore._status import Interrupted, Status

MAX_ITERATE_BYTES = 8 * 2**30      # the [N, steps+1, D] array descend may allocate

__all__ = ["descend", "descend_to_rest", "Run", "Rest", "diagnostics"]


@dataclass(repr=False)
class Run:
    """Result of :func:`descend`.

    iterates [N, steps+1, D] (NaN after a trajectory stops), status [N] (Status codes),
    nsteps [N] (steps taken), lr: the learning rate used at each step — [N, steps] for
    scalar rates (constant for gd/heavy_ball/nesterov), [N, steps, D] for dal_per_param.
    """
    iterates: np.ndarray
    status: np.ndarray
    nsteps: np.ndarray
    lr: np.ndarray
    method: str
    saved: np.ndarray | None = None     # sgd with every > 1: the step of each stored iterate
    seed: int | None = None             # sgd: the seed (replay with seed=, ids=)
    last: np.ndarray | None = None      # sgd: the last iterate of each trajectory
    device: str = "cpu"                 # where it ran: 'cpu' or 'gpu'

    @property
    def final(self):
        """Last iterate of each trajectory (before it stopped) [N, D]."""
        if self.last is not None:
            return self.last
        idx = np.asarray(self.nsteps)
        return self.iterates[np.arange(len(idx)), idx]

    @property
    def message(self):
        return Status.summary(self.status)

    def __repr__(self):
        N, T, D = self.iterates.shape
        steps = T - 1 if self.saved is None else int(self.saved[-1])
        kept = "" if self.saved is None else f", {T} kept"
        return f"Run({self.method}: {N} starts × {steps} steps{kept} × D={D}; {self.message})"


def _rates(lr, n, method):
    """One learning rate (a float) or one per start ([N] array), each finite and > 0."""
    if lr is None:
        raise ValueError(f"lr must be given for method {method!r}")
    a = np.asarray(lr, dtype=np.float64) if not isinstance(lr, str) else np.array(np.nan)
    if a.ndim == 0:
        if not (np.isfinite(a) and a > 0):
            raise ValueError(f"lr must be finite and > 0 for method {method!r}, got {lr!r}")
        return float(a)
    if a.shape != (n,):
        raise ValueError(f"lr must be one number or one per start (shape [{n}]), got shape {a.shape}")
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError("every learning rate in lr must be finite and > 0")
    return a


_DEFAULTS = {"lr": None, "beta": None, "power": 1.0, "lr_cap": None, "batch": 1, "replace": True, "seed": None,
             "ids": None, "every": 1}
_USED_BY = {"beta": ("heavy_ball", "nesterov", "dal_momentum", "sgd"), "lr": ("gd", "heavy_ball", "nesterov", "sgd"),
            **dict.fromkeys(("power", "lr_cap"), ("dal", "dal_momentum", "dal_per_param")),
            **dict.fromkeys(("batch", "replace", "seed", "ids", "every"), ("sgd",))}


def _check_unused(method, **given):
    """An argument the method does not read, given anyway: an error for SGD's (batch=4 without
    method='sgd' is a full-batch run the caller did not ask for), a warning for a method's own
    parameters (beta=0.9 without method='heavy_ball' runs plain GD; a loop over methods with one
    set of keywords stays possible, as with scipy.optimize.minimize's ``jac``)."""
    for name, value in given.items():
        default = _DEFAULTS[name]
        if method in _USED_BY[name] or value is default or (default is not None and value == default):
            continue
        msg = (f"{name}= is not used by method={method!r} (only by "
               f"{', '.join(repr(m) for m in _USED_BY[name])})")
        if _USED_BY[name] == ("sgd",):
            raise ValueError(msg + ("; slice run.iterates[:, ::k] instead" if name == "every" else ""))
        warnings.warn(msg + "; it is ignored", UserWarning, stacklevel=3)


def descend(loss: Loss, theta0: ArrayLike, lr: float | ArrayLike | None = None, steps: int = 100, method: str = "gd",
            beta: float | None = None, power: float = 1.0, lr_cap: float | None = None, escape_radius: float = 1e12,
            threads: int | None = None, *, batch: int = 1, replace: bool = True, seed: int | None = None,
            ids: ArrayLike | None = None, every: int = 1, device: str | None = None) -> Run:
    """Run a discrete optimizer from every row of theta0 [N, D] (or [D]); ``lr`` is one learning
    rate or one per start [N].

    Methods (h = lr, g = ∇E(θ), H = ∇²E(θ), ĝ = g/‖g‖):

    * ``gd``: θ⁺ = θ − h g
    * ``heavy_ball``: θ⁺ = θ − h g + β(θ − θ⁻)
    * ``nesterov``: y = θ + β(θ − θ⁻); θ⁺ = y − h g(y)
    * ``dal``: θ⁺ = θ − h(θ) g with h(θ) = 2/‖H ĝ‖^p (DAL-p; p = ``power``, p = 1 is DAL),
      capped at ``lr_cap`` when given; ``lr`` is not used
    * ``dal_momentum``: heavy ball with the DAL-p rate: θ⁺ = θ − h(θ) g + β(θ − θ⁻)
    * ``dal_per_param``: each coordinate its own rate h_a = 2/|(H ĝ)_a|^p (capped)
    * ``sgd`` (``loss`` a :class:`flowcore.DataLoss`, E = (1/n) Σ_k ℓ_k, or a network from
      ``fc.nn.mlp``, run in JAX with the same batches): v⁺ = β v − h ĝ_B(θ),
      θ⁺ = θ + v⁺, with ĝ_B the mean of ∇ℓ_k over a batch of ``batch`` examples drawn with
      replacement (``replace=True``) or, without, along a fresh permutation every epoch of
      ⌊n/B⌋ steps. β = ``beta`` defaults to 0 here (plain SGD). Random numbers come from
      Philox keyed by (``seed``, trajectory id): trajectory i uses id ``ids[i]``
      (default i), so a run is the same alone, in any batch and on any number of threads, and
      ``seed=run.seed, ids=[i]`` replays trajectory i. ``every``: keep every k-th iterate
      (and the last; ``run.saved`` lists their steps).

    A :class:`flowcore.DataLoss` or network given to the other methods runs them on its
    full-batch loss. ``beta`` defaults to 0.9 for the momentum methods. A method's parameter
    given to a method that does not read it (``beta`` to 'gd', ``lr`` to 'dal') is ignored with a
    warning; SGD's (``batch``, ``replace``, ``seed``, ``ids``, ``every``) without
    ``method='sgd'`` are refused.

    ``device``: 'cpu', 'gpu' or None (the GPU when usable and there are at least 10⁴ starts).
    A loss with a sympy expression (Loss.from_expr, the zoo) runs as one compiled kernel with the
    loss inlined (compiled on first use, cached on disk), on either target; other losses run the
    generic loop on the CPU.

    A trajectory stops with Status.ESCAPED when ‖θ‖ > escape_radius and
    Status.NONFINITE on a non-finite value; the others go on. Ctrl-C stops within a step and
    raises :class:`flowcore.Interrupted` (``.partial``: the Run so far).
    """
    from flowcore.data import DataLoss
    from flowcore.nn import Network
    if method not in (*METHODS, "sgd"):
        raise ValueError(f"method must be one of {sorted([*METHODS, 'sgd'])}, got {method!r}")
    _check_unused(method, lr=lr, beta=beta, power=power, lr_cap=lr_cap, batch=batch, replace=replace,
                   seed=seed, ids=ids, every=every)
    if method == "sgd" and isinstance(loss, Network):
        from flowcore.nn import sgd
        return sgd(loss, theta0, lr, steps, batch, replace, 0.0 if beta is None else beta, seed, ids, every,
                   escape_radius)
    if isinstance(loss, Network):
        loss = loss.loss
    if method == "sgd":
        if not isinstance(loss, DataLoss):
            raise TypeError("method='sgd' needs a loss over data: a flowcore.DataLoss (DataLoss.from_expr"
                            f"(example, data)) or a network (fc.nn.mlp); got {type(loss).__name__}")
        return _sgd(loss, theta0, lr, steps, 0.0 if beta is None else beta, batch, replace, seed, ids, every, escape_radius, threads, device)
    if isinstance(loss, DataLoss):
        loss = loss.loss
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a flowcore.Loss, got {type(loss).__name__}")
    th = np.asarray(theta0)
    if np.iscomplexobj(th):
        raise TypeError("descend runs real iterates; theta0 must be real")
    th = np.atleast_2d(np.asarray(th, dtype=np.float64))
    if th.ndim != 2 or th.shape[1] != loss.dim:
        raise ValueError(f"theta0 must have shape [N, {loss.dim}] (or [{loss.dim}]), got {np.shape(theta0)}")
    steps = count(steps, "steps", 0, INT32_MAX - 1)
    if th.shape[0] * (steps + 1) * loss.dim * 8 > MAX_ITERATE_BYTES:
        raise ValueError(f"steps={steps} for {th.shape[0]} starts keeps {th.shape[0] * (steps + 1) * loss.dim * 8 / 2**30:.0f} "
                         "GiB of iterates: use fewer steps or starts (fa.basins keeps only final states)")
    uses_lr = not method.startswith("dal")
    if uses_lr:
        lr = _rates(lr, th.shape[0], method)
    beta = 0.9 if beta is None else beta
    if not (0 <= beta < 1):
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    if not (np.isfinite(power) and power > 0):
        raise ValueError(f"power must be > 0, got {power}")
    if lr_cap is not None and not (np.isfinite(lr_cap) and lr_cap > 0):
        raise ValueError(f"lr_cap must be > 0 or None, got {lr_cap}")
    radius = np.inf if escape_radius == np.inf else positive(escape_radius, "escape_radius")
    b = beta if method in ("heavy_ball", "nesterov", "dal_momentum") else 0.0
    N = th.shape[0]
    nthreads = _threads(threads, -(-N // 64))
    record = _recorder(loss, method, _kernels.choose_device(device, N))
    if record is not None and N:
        run, interrupted = _descend_compiled(record, th, steps, method, lr if uses_lr else None, b, power,
                                             lr_cap, radius, nthreads)
    else:
        X, rates, status, nsteps, _, interrupted = _descend(
            loss, np.ascontiguousarray(th), steps, method, lr if uses_lr else 0.0, b, float(power),
            float(lr_cap or 0.0), radius, nthreads)
        run = Run(X, status.astype(np.int8), nsteps, rates, method)
    if interrupted:
        raise Interrupted(run, "fc.descend")
    return run


def _recorder(loss, method, device):
    """The map's recording kernel on the chosen target (``.device`` says which), or None for the
    generic loop (a loss without an expression): device='gpu' then raises, and None, when a GPU
    was usable, says so in one line."""
    try:
        problem = _kernels.loss_problem(loss)
    except _kernels.NoKernel as why:
        if device == "gpu":
            raise ValueError(f"device='gpu': {method} on {loss.name!r} cannot run on the GPU: {why}") from None
        if device is None and _kernels.gpu_usable(None):
            print(f"flowcore: {method} on {loss.name!r} runs on the CPU: {why}", file=sys.stderr)
        return None
    gpu = _kernels.gpu_usable(device)
    kernel = (_kernels.gpu_record if gpu else _kernels.host_record)(problem, method)

    def record(*args):
        return (_kernels.run_record_gpu if gpu else _kernels.run_record_host)(kernel, *args)
    record.device = "gpu" if gpu else "cpu"
    return record


def _descend_compiled(record, th, steps, method, lr, beta, power, lr_cap, radius, threads):
    """fc.descend through a recording kernel (lr None: a DAL method, whose rates the kernel
    returns); (Run, whether Ctrl-C arrived)."""
    N = len(th)
    r, n = _kernels.pack_map_args(beta, float(power), float(lr_cap or 0.0), radius, 0.0, steps, 1)
    lrs = np.ascontiguousarray(np.broadcast_to(0.0 if lr is None else lr, (N,)), dtype=np.float64)
    nrate = 0 if lr is not None else th.shape[1] if method == "dal_per_param" else 1
    X, rates, status, nsteps, interrupted = record(r, n, lrs, np.ascontiguousarray(th), nrate, threads)
    if lr is not None:
        rates = np.repeat(lrs[:, None], steps, axis=1)
    elif method != "dal_per_param":
        rates = rates[..., 0]
    return Run(X, status.astype(np.int8), nsteps, rates, method, device=record.device), interrupted


@dataclass(repr=False)
class Rest:
    """Result of :func:`descend_to_rest`, per start: ``final`` [N, D] the last iterate, or for a
    start that settled on a p-cycle the cycle's lexicographically smallest point (the same point
    whatever the phase it was caught in); ``period`` [N] (1 a fixed point, p a cycle, 0 did not
    come to rest); ``status`` [N] (MAX_STEPS when the budget ran out first); ``nsteps`` [N]."""
    final: np.ndarray
    period: np.ndarray
    status: np.ndarray
    nsteps: np.ndarray
    method: str
    device: str = "cpu"

    def __repr__(self):
        N, D = self.final.shape
        cycles = int(np.sum(self.period > 1))
        return (f"Rest({self.method}: {N} starts, D={D}; {Status.summary(self.status)}; "
                f"{int(np.sum(self.period == 1))} at a fixed point, {cycles} on a cycle)")


@dataclass
class _SGDArgs:
    th: np.ndarray        # [N, D] starts
    steps: int
    every: int
    batch: int
    rates: np.ndarray     # [N]
    seed: int
    key: np.ndarray       # Philox key words
    ids: np.ndarray       # [N] run ids
    radius: float
    save: np.ndarray      # the steps recorded


def _sgd_args(theta0, dim, n, lr, steps, every, batch, beta, seed, ids, escape_radius):
    """SGD's arguments checked once for both drivers (the compiled kernel, and JAX for networks)."""
    from flowcore import _stochastic as S
    th = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    if th.ndim != 2 or th.shape[1] != dim:
        raise ValueError(f"theta0 must have shape [N, {dim}] (or [{dim}]), got {np.shape(theta0)}")
    N = th.shape[0]
    steps = count(steps, "steps", 0, INT32_MAX - 1)
    every = count(every, "every", 1, max(steps, 1))
    batch = count(batch, "batch", 1, n)
    if not (0 <= beta < 1):
        raise ValueError(f"beta must be in [0, 1) (the momentum; 0 is plain SGD), got {beta}")
    rates = np.ascontiguousarray(np.broadcast_to(_rates(lr, N, "sgd"), (N,)), dtype=np.float64)
    seed, key, ids = S.seed_and_ids(seed, ids, N)
    save = S.save_steps(steps, every)
    if N * len(save) * dim * 8 > MAX_ITERATE_BYTES:
        raise ValueError(f"keeping {len(save)} iterates of {N} runs needs {N * len(save) * dim * 8 / 2**30:.0f} "
                         "GiB: pass every= to keep fewer")
    radius = np.inf if escape_radius == np.inf else positive(escape_radius, "escape_radius")
    return _SGDArgs(np.ascontiguousarray(th), steps, every, batch, rates, seed, key, ids, radius, save)


def _sgd(data, theta0, lr, steps, beta, batch, replace, seed, ids, every, escape_radius, threads, device):
    from flowcore import _stochastic as S
    a = _sgd_args(theta0, data.dim, data.n, lr, steps, every, batch, beta, seed, ids, escape_radius)
    N = a.th.shape[0]
    r = np.array([beta, a.radius], dtype=np.float64)
    n = np.array([a.steps, data.n, a.batch, int(bool(replace)), len(a.save), *a.key], dtype=np.int64)
    device = S.pick_device(device, N)
    out, last, status, nsteps, interrupted = S.run(
        data._noise_problem("sgd"), device, r, n, a.save, data.data, a.ids, a.rates, a.th,
        threads=_threads(threads, -(-N // 64)))
    run = Run(out, status, nsteps, np.broadcast_to(a.rates[:, None], (N, a.steps)), "sgd",
              None if a.every == 1 else a.save, a.seed, last, device)
    if interrupted:
        raise Interrupted(run, "fc.descend")
    return run


def descend_to_rest(loss: Loss, theta0: ArrayLike, lr: float | None = None, steps: int = 1000,
                    method: str = "gd", tol: float = 1e-10, max_period: int = 16, confirm: int = 50,
                    beta: float = 0.9, power: float = 1.0, lr_cap: float | None = None,
                    escape_radius: float = 1e12, threads: int | None = None, progress: bool | None = None,
                    chunk: int = 1 << 14, device: str | None = None) -> Rest:
    """Run a map from every start until it comes to rest, keeping no iterates (for basins).

    A start is at rest once a recurrence ‖θ_k − θ_{k−p}‖∞ ≤ tol(1 + ‖θ_k‖∞) with one p ≤
    ``max_period`` has held at ``confirm`` consecutive iterations (so that a start a hair off an
    unstable fixed point is not taken for resting there); p is then reduced to its smallest
    divisor that also recurs (a damped oscillation onto a fixed point passes the p = 2 test
    first). p = 1 is tested every step, all p every ``max_period`` steps. Methods, ``lr`` and
    the escape test as in :func:`descend`. Ctrl-C raises :class:`flowcore.Interrupted`.

    ``device``: 'cpu', 'gpu' or None (the GPU when usable and there are at least 10⁴ starts).
    A loss with a sympy expression (Loss.from_expr, the zoo) runs as one compiled kernel with the
    loss inlined (compiled on first use, cached); other losses run the generic loop on the CPU.
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a flowcore.Loss, got {type(loss).__name__}")
    if method not in ("gd", "heavy_ball", "nesterov", "dal"):
        raise ValueError(f"method must be gd, heavy_ball, nesterov or dal for rest tests, got {method!r}")
    _check_unused(method, lr=lr, power=power, lr_cap=lr_cap)      # (beta has a default: not checkable)
    th = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    if th.ndim != 2 or th.shape[1] != loss.dim:
        raise ValueError(f"theta0 must have shape [N, {loss.dim}] (or [{loss.dim}]), got {np.shape(theta0)}")
    steps = count(steps, "steps", 1, INT32_MAX - 1)
    max_period = count(max_period, "max_period", 1, 1024)
    confirm = count(confirm, "confirm (iterations a recurrence must hold)", 1, INT32_MAX)
    chunk = count(chunk, "chunk", 1, INT32_MAX)
    tol = positive(tol, "tol")
    radius = np.inf if escape_radius == np.inf else positive(escape_radius, "escape_radius")
    if method != "dal":
        lr = _rates(lr, th.shape[0], method)
    if not (0 <= beta < 1):
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    _threads(threads)
    b = beta if method in ("heavy_ball", "nesterov") else 0.0
    N, D = th.shape
    # what a start that never runs (Ctrl-C in an earlier chunk) reports: INTERRUPTED, no result
    final = np.full((N, D), np.nan)
    status = np.full(N, Status.INTERRUPTED, np.intc)
    nsteps, period = np.zeros(N, np.intc), np.zeros(N, np.intc)
    run = _rest_runner(loss, method, max_period, _kernels.choose_device(device, N), b, float(power), float(lr_cap or 0.0),
                       radius, tol, steps, confirm)
    if run.device == "gpu":
        chunk = max(chunk, _kernels.GPU_CHUNK)
    rates = np.ascontiguousarray(np.broadcast_to(np.asarray(lr if method != "dal" else 0.0, dtype=np.float64), (N,)))
    bar = Progress(N, f"{method} to rest", "start", progress)
    try:
        for i in range(0, N, chunk):
            sl = slice(i, min(N, i + chunk))
            interrupted = run(np.ascontiguousarray(th[sl]), rates[sl], _threads(threads, -(-(sl.stop - sl.start) // 64)),
                              (final[sl], status[sl], nsteps[sl], period[sl]))
            if interrupted:
                raise Interrupted(Rest(final, period, status.astype(np.int8), nsteps, method),
                                  "fc.descend_to_rest")
            bar.update(sl.stop - sl.start)
    finally:
        bar.close()
    status[(status == Status.OK) & (period == 0)] = Status.MAX_STEPS
    return Rest(final, period, status.astype(np.int8), nsteps, method, run.device)


def cluster_points(points: ArrayLike, tol: float, average: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Group points that agree within a relative tolerance: (representatives [K, D], group [N]).

    One pass in C: each row joins the first group (in order of creation) whose first member c
    has max_k |row_k − c_k| ≤ tol (1 + max_k |c_k|), else it starts a new group. A group's
    representative is the mean of its first ``average`` members (they agree within tol: a basin
    of 10⁶ starts need not be averaged whole). Real or complex points (|·| the modulus). This is
    how :func:`flowcore.analysis.basins` finds the attractors among the rest points of
    :func:`descend_to_rest` and of the flows.
    """
    pts = np.asarray(points)
    if pts.ndim != 2:
        raise ValueError(f"points must have shape [N, D], got {pts.shape}")
    dtype = np.complex128 if np.iscomplexobj(pts) else np.float64
    pts = np.ascontiguousarray(pts, dtype=dtype)
    if not np.all(np.isfinite(pts)):
        raise ValueError("points must be finite (rest points only: drop escaped or non-finite ones first)")
    group, sums, counts = _cluster_rows(pts, positive(tol, "tol"), count(average, "average", 1, INT32_MAX))
    return sums / counts[:, None], group


def _rest_runner(loss, method, max_period, device, beta, power, cap, radius, tol, steps, confirm):
    """run(th0 [n, D], lr [n], threads, out) -> interrupted, writing (final, status, nsteps,
    period) into the arrays ``out``: the loss's compiled kernel on the chosen target (on the
    host, in place), or the generic loop (losses without an expression: Python callables, C
    libraries)."""
    try:
        problem = _kernels.loss_problem(loss)
    except _kernels.NoKernel as why:
        if device == "gpu":
            raise ValueError(f"device='gpu': {loss.name!r} cannot run on the GPU: {why}") from None

        def generic(th, lr, threads, out):
            X, _, st, ns, per, intr = _descend(loss, th, steps, method, lr if method != "dal" else 0.0,
                                               beta, power, cap, radius, threads, max_period, tol, confirm)
            for dst, src in zip(out, (X, st, ns, per)):
                dst[...] = src
            return intr
        generic.device = "cpu"
        return generic
    gpu = _kernels.gpu_usable(device)
    kernel = (_kernels.gpu_rest if gpu else _kernels.host_rest)(problem, method, max_period)
    r, n = _kernels.pack_map_args(beta, power, cap, radius, tol, steps, confirm)

    def compiled(th, lr, threads, out):
        return (_kernels.run_rest_gpu if gpu else _kernels.run_rest_host)(kernel, r, n, lr, th, threads, out)
    compiled.device = "gpu" if gpu else "cpu"
    return compiled


def diagnostics(loss: Loss, iterates: ArrayLike, lr: float) -> dict:
    """Per-iterate diagnostics of a GD run (iterates [..., D], real): a dict of arrays.

    * ``loss``: E(θ)
    * ``eigenvalues`` [..., D] ascending, ``eigenvectors`` [..., D, D] of H
    * ``stability_coefficients`` [..., D]: sc_i = α_PF(hλ_i)(gᵀu_i), sign of u_i chosen
      so that gᵀu_i ≥ 0; α_PF(z) = log(1 − z)/z with +iπ for z > 1 (complex)
    * ``Hg_norm`` ‖Hg‖, ``Hghat_norm`` ‖Hĝ‖ (NaN where g = 0)
    * ``progress_ratio``: (E(θ − hg) − E(θ)) / (h‖g‖²) (Ahn et al.); −1 + O(h) for small h
    """
    from flowcore.models import pf_alpha
    th = np.asarray(iterates, dtype=np.float64)
    E, g, H, _ = loss.evaluate(th, hess=True)
    lam, U = np.linalg.eigh(H)
    proj = np.einsum("...a,...ai->...i", g, U)
    sign = np.where(proj < 0, -1.0, 1.0)
    U = U * sign[..., None, :]
    proj = proj * sign
    sc = pf_alpha(lr * lam + 0j) * proj
    Hg = np.einsum("...ab,...b->...a", H, g)
    gn = np.linalg.norm(g, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        hghat = np.where(gn > 0, np.linalg.norm(Hg, axis=-1) / gn, np.nan)
        ratio = (loss.value(th - lr * g) - E) / (lr * gn**2)
    return {"loss": E, "eigenvalues": lam, "eigenvectors": U, "stability_coefficients": sc,
            "Hg_norm": np.linalg.norm(Hg, axis=-1), "Hghat_norm": hghat, "progress_ratio": ratio}
