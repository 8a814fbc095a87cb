"""Discrete optimizers (``fc.descend``) and diagnostics along their runs."""
from __future__ import annotations

import sys

import numpy as np
from numpy.typing import ArrayLike

from flowcore.engine.checks import INT32_MAX, count, positive, threads as _threads
from flowcore.solvers.methods import COMPUTE, Compute, Optimizer, RestTest
from flowcore.engine._descend import _descend, _group_rows, dal_update
from flowcore.engine import _kernels
from flowcore.engine._loss import Loss
from flowcore.engine.progress import Progress
from flowcore.engine._status import Interrupted, Status
from flowcore.problems.models import pf_alpha
from flowcore.problems.nn import hvp, top_eigenpairs
from flowcore.solvers.runs import Rest, Run
from flowcore.solvers.sgd import MAX_ITERATE_BYTES, _rates, run_sgd


__all__ = ["descend", "descend_to_rest", "Run", "Rest", "diagnostics"]


def _compute(compute):
    if not isinstance(compute, Compute):
        raise TypeError(f"compute must be a flowcore.Compute(device=, threads=), got {compute!r}")
    return compute


def _optimizer(method, allowed=None):
    if not isinstance(method, Optimizer):
        raise TypeError(f"method must be an optimizer value (fc.GD(lr), fc.HeavyBall(lr, beta), fc.DAL() ...; "
                        f"fc.method('gd', lr=...) from a name), got {method!r}")
    if allowed is not None and method.name not in allowed:
        raise ValueError(f"{type(method).__name__} cannot run here: use one of {', '.join(allowed)}")
    return method


def descend(loss: Loss, theta0: ArrayLike, method: Optimizer, steps: int = 100, escape_radius: float = 1e12,
            compute: Compute = COMPUTE) -> Run:
    """Run a discrete optimizer from every row of theta0 [N, D] (or [D]): ``method`` is a value
    that owns its parameters (h = lr, g = ∇E(θ), H = ∇²E(θ), ĝ = g/‖g‖):

    * :class:`~flowcore.GD` (lr): θ⁺ = θ − h g
    * :class:`~flowcore.HeavyBall` (lr, beta): θ⁺ = θ − h g + β(θ − θ⁻)
    * :class:`~flowcore.Nesterov` (lr, beta): y = θ + β(θ − θ⁻); θ⁺ = y − h g(y)
    * :class:`~flowcore.DAL` (power, lr_cap): θ⁺ = θ − h(θ) g with h(θ) = 2/‖H ĝ‖^p, capped
    * :class:`~flowcore.DALMomentum` (beta, power, lr_cap): heavy ball with the DAL-p rate
    * :class:`~flowcore.DALPerParam` (power, lr_cap): coordinate a has h_a = 2/|(H ĝ)_a|^p
    * :class:`~flowcore.SGD` (lr, batch, beta, replace, seed, ids, every), ``loss`` a
      :class:`flowcore.DataLoss` (E = (1/n) Σ_k ℓ_k) or a network (``fc.nn.mlp``, run in JAX with
      the same batches): see :class:`~flowcore.SGD`.

    ``lr`` is one rate or one per start [N]. A DataLoss or network given to the full-batch
    methods runs them on its full-batch loss; a network with more than ``DENSE_HESSIAN_MAX`` (1024)
    parameters runs the DAL methods with H g from a Hessian–vector product a step (its Hessian
    is never formed; a progress bar over the steps). ``compute``: device ('cpu', 'gpu' or None: the
    GPU when usable and there are at least 10⁴ starts) and threads. A loss with a sympy
    expression (Loss.from_expr, the zoo) runs as one compiled kernel with the loss inlined
    (compiled on first use, cached on disk), on either target; other losses run the generic
    loop on the CPU.

    A trajectory stops with Status.ESCAPED when ‖θ‖ > escape_radius and
    Status.NONFINITE on a non-finite value; the others go on. Ctrl-C stops within a step and
    raises :class:`flowcore.Interrupted` (``.partial``: the Run so far).
    """
    m = _optimizer(method)
    compute = _compute(compute)
    if m.name == "sgd":
        return run_sgd(loss, theta0, m, steps, escape_radius, compute)
    loss = getattr(loss, "full_batch_loss", loss)       # a loss over data or a network: its E
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
    lr = _rates(m.lr, th.shape[0]) if m.uses_lr else None
    radius = np.inf if escape_radius == np.inf else positive(escape_radius, "escape_radius")
    N = th.shape[0]
    nthreads = _threads(compute.threads, -(-N // 64))
    record = _recorder(loss, m.name, _kernels.choose_device(compute.device, N))
    if m.name.startswith("dal") and hessian_free(loss):
        run, interrupted = _descend_hvp(loss, th, steps, m, radius)
    elif record is not None and N:
        run, interrupted = _descend_compiled(record, th, steps, m.name, lr, m.momentum, m.rate_power,
                                             m.rate_cap, radius, nthreads)
    else:
        X, rates, status, nsteps, _, interrupted = _descend(
            loss, np.ascontiguousarray(th), steps, m.name, 0.0 if lr is None else lr, m.momentum, m.rate_power,
            m.rate_cap, radius, nthreads)
        run = Run(X, status.astype(np.int8), nsteps, rates, m.name)
    if interrupted:
        raise Interrupted(run, "fc.descend")
    return run


DENSE_HESSIAN_MAX = 1024    # above this many parameters a network's Hessian is never formed: DAL takes H g, the
                            # diagnostics the top eigenpairs, from Hessian–vector products


def hessian_free(loss):
    """Is ``loss`` a network (Hessian–vector products) above DENSE_HESSIAN_MAX parameters, whose
    Hessian the analyses never form?"""
    return "hvp" in loss.provides and loss.dim > DENSE_HESSIAN_MAX


def _descend_hvp(loss, th, steps, m, radius):
    """The DAL methods of a JAX loss (a network) with H g from one Hessian–vector product a step
    (fc.nn.hvp), never the D×D Hessian the generic loop holds per trajectory (58 GB at the digits
    MLP's D = 85 002); the rate and update are the generic loop's own (_descend.dal_update).
    Starts one after another, a progress bar over their steps; (Run, whether Ctrl-C arrived)."""
    N, D = th.shape
    per_param = m.name == "dal_per_param"
    X = np.full((N, steps + 1, D), np.nan)
    X[:, 0] = th
    rates = np.full((N, steps) + ((D,) if per_param else ()), np.nan)
    status, nsteps = np.zeros(N, np.int8), np.zeros(N, np.intc)
    bar = Progress(N * steps, f"{m.name} by Hessian–vector products", "step", None)
    interrupted = False
    try:
        for i in range(N):
            cur, vel = th[i].copy(), np.zeros(D)
            for k in range(steps):
                g = np.ascontiguousarray(loss.grad(cur[None])[0])
                Hg = np.ascontiguousarray(hvp(loss, cur, g), dtype=np.float64)
                rate = np.empty(D if per_param else 1)
                norm2 = dal_update(m.name, float(m.rate_power), m.rate_cap, m.momentum, g, Hg, vel, cur, rate)
                X[i, k + 1], rates[i, k], nsteps[i] = cur, rate if per_param else rate[0], k + 1
                bar.update(1)
                if not np.isfinite(norm2) or norm2 > radius * radius:
                    status[i] = Status.NONFINITE if not np.isfinite(norm2) else Status.ESCAPED
                    bar.update(steps - k - 1)
                    break
    except KeyboardInterrupt:
        status[i:] = Status.INTERRUPTED
        interrupted = True
    finally:
        bar.close()
    return Run(X, status, nsteps, rates, m.name), interrupted


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
    r, n = _kernels.pack_map_args(beta, float(power), lr_cap, radius, 0.0, steps, 1)
    lrs = np.ascontiguousarray(np.broadcast_to(0.0 if lr is None else lr, (N,)), dtype=np.float64)
    nrate = 0 if lr is not None else th.shape[1] if method == "dal_per_param" else 1
    X, rates, status, nsteps, interrupted = record(r, n, lrs, np.ascontiguousarray(th), nrate, threads)
    if lr is not None:
        rates = np.broadcast_to(lrs[:, None], (N, steps))        # a fixed rate: a view, as fc.sgd's
    elif method != "dal_per_param":
        rates = rates[..., 0]
    return Run(X, status.astype(np.int8), nsteps, rates, method, device=record.device), interrupted


def descend_to_rest(loss: Loss, theta0: ArrayLike, method: Optimizer, rest: RestTest = RestTest(),
                    compute: Compute = COMPUTE, progress: bool | None = None) -> Rest:
    """Run a map (:class:`~flowcore.GD`, :class:`~flowcore.HeavyBall`, :class:`~flowcore.Nesterov`
    or :class:`~flowcore.DAL`) from every start until it comes to rest, keeping no iterates (for
    basins).

    A start is at rest (``rest``, a :class:`~flowcore.RestTest`) once a recurrence
    ‖θ_k − θ_{k−p}‖∞ ≤ tol(1 + ‖θ_k‖∞) with one p ≤ max_period has held at ``confirm``
    consecutive iterations (so that a start a hair off an unstable fixed point is not taken for
    resting there); p is then reduced to its smallest divisor that also recurs (a damped
    oscillation onto a fixed point passes the p = 2 test first). p = 1 is tested every step, all
    p every max_period steps; at most ``rest.steps`` iterations; ‖θ‖ > rest.escape_radius is
    ESCAPED. Ctrl-C raises :class:`flowcore.Interrupted`.

    ``compute``: device ('cpu', 'gpu' or None: the GPU when usable and there are at least 10⁴
    starts), threads, chunk (starts per chunk, default 16 384). A loss with a sympy expression
    (Loss.from_expr, the zoo) runs as one compiled kernel with the loss inlined (compiled on first
    use, cached); other losses run the generic loop on the CPU.
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a flowcore.Loss, got {type(loss).__name__}")
    m = _optimizer(method, ("gd", "heavy_ball", "nesterov", "dal"))
    if not isinstance(rest, RestTest):
        raise TypeError(f"rest must be a flowcore.RestTest(tol=, max_period=, confirm=, steps=), got {rest!r}")
    compute = _compute(compute)
    th = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    if th.ndim != 2 or th.shape[1] != loss.dim:
        raise ValueError(f"theta0 must have shape [N, {loss.dim}] (or [{loss.dim}]), got {np.shape(theta0)}")
    N, D = th.shape
    lr = _rates(m.lr, N) if m.uses_lr else 0.0
    chunk = compute.chunk_or(1 << 14)
    # written whole by the kernel's threads, chunk by chunk (first touch in parallel: a serial
    # fill of fresh pages costs more than the map's arithmetic on this scale)
    final, status = np.empty((N, D)), np.empty(N, np.intc)
    nsteps, period = np.empty(N, np.intc), np.empty(N, np.intc)
    run = _rest_runner(loss, m, rest, _kernels.choose_device(compute.device, N))
    if run.device == "gpu":
        chunk = max(chunk, _kernels.GPU_CHUNK)
    if isinstance(lr, np.ndarray):
        rates = np.ascontiguousarray(lr, dtype=np.float64)
    else:                   # one rate: one chunk's worth, sliced for every chunk
        rates = np.full(min(N, chunk), float(lr))
    bar = Progress(N, f"{m.name} to rest", "start", progress)
    try:
        for i in range(0, N, chunk):
            sl = slice(i, min(N, i + chunk))
            interrupted = run(np.ascontiguousarray(th[sl]), rates[sl] if rates.size == N else rates[:sl.stop - i],
                              _threads(compute.threads, -(-(sl.stop - sl.start) // 64)),
                              (final[sl], status[sl], nsteps[sl], period[sl]))
            if interrupted:     # Ctrl-C: the starts it stopped or never reached: INTERRUPTED, no result
                status[sl.stop:] = Status.INTERRUPTED
                nsteps[sl.stop:] = period[sl.stop:] = 0
                final[status == Status.INTERRUPTED] = np.nan
                raise Interrupted(Rest(final, period, status.astype(np.int8), nsteps, m.name),
                                  "fc.descend_to_rest")
            bar.update(sl.stop - sl.start)
    finally:
        bar.close()
    return Rest(final, period, status.astype(np.int8), nsteps, m.name, run.device)


def rest_batches(loss: Loss, method: Optimizer, rest: RestTest, compute: Compute, size: int):
    """run(th [n ≤ size, D]) -> (final, status, nsteps, period): :func:`descend_to_rest`'s kernel
    on one batch of starts after another, into buffers reused from batch to batch (fa.basins'
    chunks: no fresh memory and no per-call setup a chunk), each result valid until the next
    call; one rate; a start that ran out of steps is MAX_STEPS. Ctrl-C raises
    :class:`flowcore.Interrupted` with no partial result."""
    m = _optimizer(method, ("gd", "heavy_ball", "nesterov", "dal"))
    run = _rest_runner(loss, m, rest, _kernels.choose_device(compute.device, size))
    final, status = np.empty((size, loss.dim)), np.empty(size, np.intc)
    nsteps, period = np.empty(size, np.intc), np.empty(size, np.intc)
    rates = np.full(size, float(m.lr) if m.uses_lr else 0.0)

    def batch(th, steps_out=None):
        """(steps_out: the caller's int32 array [n] for the step counts, written by the kernel's
        threads: first touch in parallel)"""
        n = len(th)
        out = (final[:n], status[:n], nsteps[:n] if steps_out is None else steps_out, period[:n])
        if run(np.ascontiguousarray(th, dtype=np.float64), rates[:n], _threads(compute.threads, -(-n // 64)), out):
            raise Interrupted(None, "fc.descend_to_rest", "no result is kept")
        return out
    batch.device = run.device
    return batch


def cluster_points(points: ArrayLike, tol: float, average: int = 1024,
                   threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group points that agree within a relative tolerance: (representatives [K, D], group [N],
    int32 (int64 beyond 2³¹ − 1 rows)).

    Each row joins the first group (in order of creation) whose first member c has
    max_k |row_k − c_k| ≤ tol (1 + max_k |c_k|), else it starts a new group. A group's
    representative is the mean of its first ``average`` members (they agree within tol: a basin
    of 10⁶ starts need not be averaged whole). Real or complex points (|·| the modulus). In C,
    on ``threads`` cores (None: all; the groups do not depend on it: the rows are tested in
    parallel against the groups the first 4 096 rows made, the few that meet none of those
    serially, in order). This is how :func:`flowcore.analysis.basins` finds the attractors among
    the rest points of :func:`descend_to_rest` and of the flows (chunk by chunk, with the same
    groups).
    """
    pts = np.asarray(points)
    if pts.ndim != 2:
        raise ValueError(f"points must have shape [N, D], got {pts.shape}")
    grouping = Grouping(pts.shape[1], np.iscomplexobj(pts), tol, average)
    group = grouping.add(pts, threads)
    return grouping.representatives(), group


class Grouping:
    """The groups of :func:`cluster_points`, made from rows fed in order, a batch at a time
    (``add``): the same groups as one call on all the rows. fa.basins feeds each chunk's rest
    points while they are in cache, so that no array of all the final points is ever made."""

    def __init__(self, dim, complex_, tol, average=1024, cap=16):
        self.dtype = np.complex128 if complex_ else np.float64
        self.tol, self.average = positive(tol, "tol"), count(average, "average", 1, INT32_MAX)
        self.centres, self.sums = np.zeros((cap, dim), self.dtype), np.zeros((cap, dim), self.dtype)
        self.radius = np.zeros(cap)
        self.size, self.counts, self.first = (np.zeros(cap, np.int64) for _ in range(3))
        self.nc = self.rows = 0

    def add(self, points, threads=None, out=None):
        """The group of each row of points [n, D] (into ``out`` when given: int32 or int64 [n])."""
        pts = np.ascontiguousarray(points, dtype=self.dtype)
        if pts.ndim != 2 or pts.shape[1] != self.centres.shape[1]:
            raise ValueError(f"points must have shape [N, {self.centres.shape[1]}], got {pts.shape}")
        n = len(pts)
        if out is None:                         # (written in parallel)
            out = np.empty(n, np.int32 if self.rows + n <= INT32_MAX else np.int64)
        if not _group_rows(self, pts, out, _threads(threads, -(-n // 4096))):
            raise ValueError("points must be finite (rest points only: drop escaped or non-finite ones first)")
        return out

    def representatives(self):
        """[K, D]: each group's mean of its first ``average`` members."""
        return self.sums[:self.nc] / self.counts[:self.nc, None]

    def sizes(self):
        return self.size[:self.nc]

    def first_rows(self):
        """The row (counted over every batch) that made each group: its first member."""
        return self.first[:self.nc]


def _rest_runner(loss, m, rest, device):
    """run(th0 [n, D], lr [n], threads, out) -> interrupted, writing (final, status, nsteps,
    period) into the arrays ``out``: the loss's compiled kernel on the chosen target (on the
    host, in place), or the generic loop (losses without an expression: Python callables, C
    libraries)."""
    tol, radius = rest.tol_for("map"), rest.escape_radius
    try:
        problem = _kernels.loss_problem(loss)
    except _kernels.NoKernel as why:
        if device == "gpu":
            raise ValueError(f"device='gpu': {loss.name!r} cannot run on the GPU: {why}") from None

        def generic(th, lr, threads, out):
            X, _, st, ns, per, intr = _descend(loss, th, rest.steps, m.name, lr, m.momentum, m.rate_power,
                                               m.rate_cap, radius, threads, rest.max_period, tol, rest.confirm)
            st[(st == Status.OK) & (per == 0)] = Status.MAX_STEPS    # (the kernels say so themselves)
            for dst, src in zip(out, (X, st, ns, per)):
                dst[...] = src
            return intr
        generic.device = "cpu"
        return generic
    gpu = _kernels.gpu_usable(device)
    kernel = (_kernels.gpu_rest if gpu else _kernels.host_rest)(problem, m.name, rest.max_period)
    r, n = _kernels.pack_map_args(m.momentum, m.rate_power, m.rate_cap, radius, tol, rest.steps, rest.confirm)

    def compiled(th, lr, threads, out):
        return (_kernels.run_rest_gpu if gpu else _kernels.run_rest_host)(kernel, r, n, lr, th, threads, out)
    compiled.device = "gpu" if gpu else "cpu"
    return compiled


def diagnostics(loss: Loss, iterates: ArrayLike, lr: float, k: int | None = None) -> dict:
    """Per-iterate diagnostics of a GD run (iterates [..., D], real): a dict of arrays.

    * ``loss``: E(θ)
    * ``eigenvalues`` [..., K] ascending, ``eigenvectors`` [..., D, K] of H: all of them (K = D),
      or the K = ``k`` largest
    * ``stability_coefficients`` [..., K]: sc_i = α_PF(hλ_i)(gᵀu_i), sign of u_i chosen
      so that gᵀu_i ≥ 0; α_PF(z) = log(1 − z)/z with +iπ for z > 1 (complex)
    * ``Hg_norm`` ‖Hg‖, ``Hghat_norm`` ‖Hĝ‖ (NaN where g = 0)
    * ``progress_ratio``: (E(θ − hg) − E(θ)) / (h‖g‖²) (Ahn et al.); −1 + O(h) for small h

    ``k``: None for the whole spectrum from the dense Hessian — except for a network (a JAX loss)
    above ``DENSE_HESSIAN_MAX`` parameters, which takes k = 8; with k, the top-k eigenpairs by
    Lanczos on Hessian–vector products and Hg by one product (a JAX loss: H is never formed;
    another loss: from its Hessian).
    """
    th = np.asarray(iterates, dtype=np.float64)
    matrix_free = hessian_free(loss) or ("hvp" in loss.provides and k is not None)
    if matrix_free:
        E, g, lam, U, Hg = _spectrum_by_products(loss, th, 8 if k is None else k)
    else:
        E, g, H, _ = loss.evaluate(th, hess=True)
        lam, U = np.linalg.eigh(H)
        Hg = np.einsum("...ab,...b->...a", H, g)
        if k is not None:
            lam, U = lam[..., -k:], U[..., -k:]
    proj = np.einsum("...a,...ai->...i", g, U)
    sign = np.where(proj < 0, -1.0, 1.0)
    U = U * sign[..., None, :]
    proj = proj * sign
    sc = pf_alpha(lr * lam + 0j) * proj
    gn = np.linalg.norm(g, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        hghat = np.where(gn > 0, np.linalg.norm(Hg, axis=-1) / gn, np.nan)
        ratio = (loss.value(th - lr * g) - E) / (lr * gn**2)
    return {"loss": E, "eigenvalues": lam, "eigenvectors": U, "stability_coefficients": sc,
            "Hg_norm": np.linalg.norm(Hg, axis=-1), "Hghat_norm": hghat, "progress_ratio": ratio}


def _spectrum_by_products(loss, th, k):
    """(E, g, the top-k eigenvalues ascending [..., k], their eigenvectors [..., D, k], Hg) at each
    row of th from Hessian–vector products (fc.nn.top_eigenpairs, fc.nn.hvp), a progress bar over
    the rows (a Lanczos run is seconds at D ~ 10⁵)."""
    rows = th.reshape(-1, th.shape[-1])
    n, D = rows.shape
    if not 1 <= k < D:
        raise ValueError(f"k must be in [1, {D - 1}] (the top eigenpairs by Lanczos), got {k}")
    E, g = loss.value(rows), loss.grad(rows)
    lam, U, Hg = np.empty((n, k)), np.empty((n, D, k)), np.empty((n, D))
    bar = Progress(n, "top eigenpairs by Hessian–vector products", "iterate", None)
    try:
        for i, x in enumerate(rows):
            top, vecs = top_eigenpairs(loss, x, k, tol=1e-10)
            lam[i], U[i] = top[::-1], vecs[:, ::-1]
            Hg[i] = hvp(loss, x, g[i])
            bar.update(1)
    finally:
        bar.close()
    shape = th.shape[:-1]
    return (E.reshape(shape), g.reshape(th.shape), lam.reshape(shape + (k,)), U.reshape(shape + (D, k)),
            Hg.reshape(th.shape))