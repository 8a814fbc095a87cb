"""Basins of attraction of GD-type maps and of the continuous-time models, on a 2-D slice.

Every start on the grid is run (in flowcore's kernels) until it comes to rest, leaves, or runs out
of budget, and gets one label:

* an **attractor**: a fixed point (matched to a critical point of E when it is one) or a cycle of
  a map, found by recurrence ‖θ_k − θ_{k−p}‖∞ ≤ tol(1 + ‖θ_k‖∞), p ≤ ``max_period``;
* an **unstable fixed point**: the trajectory ends on a critical point that the model does not
  attract (a start on a saddle, a maximum, or on a saddle's stable manifold) — never an attractor;
* the outcomes that are not attractors, each with its own negative label: ESCAPED (left
  ``escape_radius``), UNRESOLVED (iteration or time budget spent), SINGULAR (the PF met hλ = 1),
  NONFINITE (overflow).

PF trajectories are complex: one that comes to rest with max|Im θ| ≤ ``imag_tol`` is labelled by the
real point it converges to, and the residual max|Im θ| is reported per label and per start.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np

import flowcore as fc
from flowcore.analysis.critical import MODELS, critical_points, stability
from flowcore.analysis.dynamics import basin_entropy
from flowcore.engine._descend import _outer_rows, _relabel
from flowcore.engine import _kernels
from flowcore.engine.checks import positive, threads
from flowcore.engine.progress import Progress
from flowcore.solvers.methods import COMPUTE, Flow, Optimizer
from flowcore.solvers.optim import Grouping, rest_batches

MAPS = fc.models.MAPS
MOMENTUM = ("heavy_ball", "nesterov")
FLOWS = tuple(k for k in fc.models.FLOWS if k != "bea")      # bea needs an order: fc.flows.bea
ESCAPED, UNRESOLVED, SINGULAR, NONFINITE = -1, -2, -3, -4
_SPECIAL = {fc.Status.ESCAPED: ESCAPED, fc.Status.MAX_STEPS: UNRESOLVED, fc.Status.SINGULAR: SINGULAR,
            fc.Status.NONFINITE: NONFINITE, fc.Status.STEP_UNDERFLOW: UNRESOLVED,
            fc.Status.INTERRUPTED: UNRESOLVED}
_SPECIAL_NAMES = {ESCAPED: "escaped", UNRESOLVED: "unresolved", SINGULAR: "singular (hλ = 1)",
                  NONFINITE: "non-finite"}


@dataclass
class Label:
    """One label of a basin image: what the starts with this label do."""
    label: int
    kind: str                      # 'fixed point', 'cycle', 'unstable fixed point', or a special outcome
    points: np.ndarray             # [period, D]: the fixed point or the cycle (empty for specials)
    critical: object = None        # the CriticalPoint it matches, if any
    count: int = 0
    fraction: float = 0.0
    imag_residual: float = 0.0     # PF: the largest max|Im θ| at rest over its starts

    @property
    def attractor(self):
        return self.kind in ("fixed point", "cycle")

    @property
    def name(self):
        if self.label < 0:
            return self.kind
        def point(v):
            v = np.real(v)
            v = np.where(np.abs(v) <= 1e-12 * (1 + np.max(np.abs(v))), 0.0, v)     # no "-3.7e-45"
            return "(" + ", ".join(f"{c:.3g}" for c in v) + ")"
        pt = point(self.points[0])
        if self.kind == "cycle":
            p = len(self.points)
            if self.points.shape[1] == 1 and p <= 4:
                # every point, in increasing order: mirrored cycles read as mirrored
                vals = np.sort(np.real(self.points[:, 0]))
                return f"{p}-cycle " + " ↔ ".join(f"{v:.3g}" for v in vals)
            return f"{p}-cycle through {pt}"
        what = self.critical.kind if self.critical is not None else "fixed point"
        return f"{what} {pt}" + (" [unstable]" if self.kind == "unstable fixed point" else "")

    def as_dict(self):
        return {"label": self.label, "name": self.name, "kind": self.kind, "attractor": self.attractor,
                "points": np.real(self.points).tolist(), "critical_kind": getattr(self.critical, "kind", None),
                "count": self.count, "fraction": self.fraction, "imag_residual": self.imag_residual}


@dataclass
class Basins:
    """Result of :func:`basins`: ``labels`` has the grid's shape ([ny, nx], or [nx] in 1-D)."""
    labels: np.ndarray
    axes: tuple                    # the grid's coordinates along each direction (x, then y)
    entries: list                  # one Label per label value present
    model: str
    lr: float
    imag_residual: np.ndarray      # per start (real models: 0, a read-only view)
    nsteps: np.ndarray             # map iterations (maps) or accepted steps (flows), per start
    settings: dict = field(default_factory=dict)
    critical: list = field(default_factory=list)   # the critical points of E used for matching
    vars: tuple | None = None      # the loss's variable names (for axis labels), when it has them
    grid_parts: tuple = field(default=(), repr=False)    # (a, b): start (j, i) is a_j + b_i

    @functools.cached_property
    def starts(self):
        """[..., D] the starting points (made on first use: the map itself runs them chunk by
        chunk and never holds them all)."""
        return _grid_from_parts(self.axes, *self.grid_parts)

    @property
    def attractors(self):
        return [e for e in self.entries if e.attractor]

    @property
    def fractions(self):
        return {e.name: e.fraction for e in self.entries}

    def entry(self, label):
        return next(e for e in self.entries if e.label == label)

    def boundary(self):
        """Mask of starts with a neighbour (4-neighbourhood) of another label."""
        L = np.atleast_2d(self.labels)
        m = np.zeros(L.shape, bool)
        dx, dy = L[:, 1:] != L[:, :-1], L[1:, :] != L[:-1, :]
        m[:, 1:] |= dx
        m[:, :-1] |= dx
        m[1:, :] |= dy
        m[:-1, :] |= dy
        return m.reshape(self.labels.shape)

    def entropy(self, box=5):
        """(Sb, Sbb, boundary boxes) of Daza et al. 2016; see :func:`basin_entropy`."""
        return basin_entropy(self.labels, box)

    def as_dict(self, per_start=False):
        """The summary; with ``per_start`` also the grid's axes, the label of every start, its
        iterations and PF imaginary residual (enough to redraw the figure)."""
        d = {"model": self.model, "lr": self.lr, "shape": list(self.labels.shape),
             "labels": [e.as_dict() for e in self.entries], "settings": self.settings}
        if per_start:
            d.update(axes=[np.asarray(a).tolist() for a in self.axes], label_of_start=self.labels.tolist(),
                     nsteps=np.asarray(self.nsteps).tolist(), imag_residual=self.imag_residual.tolist())
        return d

    def __repr__(self):
        top = ", ".join(f"{e.name}: {e.fraction:.3g}" for e in self.entries[:6])
        more = f", … ({len(self.entries) - 6} more)" if len(self.entries) > 6 else ""
        return (f"Basins({self.model}, lr={self.lr:g}, grid {'×'.join(map(str, self.labels.shape))}: "
                f"{top}{more})")


def _plane(plane):
    """(origin, directions) of the plane of starts, or (None, None): the first two coordinates."""
    if plane is None:
        return None, None
    try:
        origin, directions = plane
    except (TypeError, ValueError):
        raise ValueError("plane must be (origin, directions): a point and two independent vectors") from None
    return origin, directions


def _axis(spec, name):
    if isinstance(spec, (list, tuple)) and len(spec) == 2:      # (lo, hi) with n forgotten, not 2 points
        raise ValueError(f"grid axis {name} = {spec!r} has no number of points: give (lo, hi, n), or the "
                         "coordinates as an array (np.array([a, b]))")
    if isinstance(spec, np.ndarray) or (isinstance(spec, (list, tuple)) and len(spec) != 3):
        ax = np.asarray(spec)
        if ax.ndim != 1 or not (np.issubdtype(ax.dtype, np.integer) or np.issubdtype(ax.dtype, np.floating)):
            raise ValueError(f"grid axis {name} must be (lo, hi, n) or a 1-D array of real coordinates, "
                             f"got an array of shape {ax.shape} and dtype {ax.dtype}")
        ax = ax.astype(float)
    else:
        try:
            lo, hi, n = spec
        except (TypeError, ValueError):
            raise ValueError(f"grid axis {name} must be (lo, hi, n) or an array of coordinates, got {spec!r}")
        real = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                   for v in (lo, hi))
        if not (real and isinstance(n, (int, np.integer)) and n >= 1 and np.isfinite(lo) and np.isfinite(hi)
                and hi > lo):
            raise ValueError(f"grid axis {name} must be (lo, hi, n) with hi > lo and an integer n >= 1, got {spec!r}")
        ax = np.linspace(lo, hi, int(n))
    if ax.size == 0 or not np.all(np.isfinite(ax)):
        raise ValueError(f"grid axis {name} must hold finite coordinates")
    return ax


MAX_GRID_STARTS = 10**8      # a basin map held in memory (its starts, final points, labels …)


def grid_points(dim, grid, origin=None, directions=None):
    """The starts of a grid: (axes, points [ny, nx, D] or [nx, D] in 1-D).

    ``grid``: (lo, hi, n) or an array for D = 1; a pair of those (x axis, y axis) otherwise.
    Points are origin + x·u + y·v with ``directions`` (u, v) (default e₀, e₁) and ``origin``
    (default 0) — a plane through a point for D > 2.
    """
    axes, a, b = _grid_parts(dim, grid, origin, directions)
    return axes, _grid_from_parts(axes, a, b)


def _grid_from_parts(axes, a, b, threads_=None):
    """The whole grid of starts [ny, nx, D] (or [nx, D]) from :func:`_grid_parts`, rows on all
    cores."""
    pts = np.empty((len(a) * len(b), a.shape[1]))
    _outer_rows(a, b, 0, pts, threads(threads_, len(pts) // 4096))
    return pts.reshape(*(len(ax) for ax in axes[::-1]), a.shape[1])


def _grid_parts(dim, grid, origin=None, directions=None):
    """(axes, a [ny, D], b [nx, D]): start (j, i) of the grid is a_j + b_i, with a_j = origin + y_j v
    and b_i = x_i u (in 1-D, a = [origin] and b_i = x_i)."""
    if dim == 1:
        if isinstance(grid, (list, tuple)) and any(isinstance(g, (list, tuple, np.ndarray)) for g in grid):
            raise ValueError("this loss is 1-D: grid is one axis, (lo, hi, n) or an array of coordinates, "
                             f"not {grid!r}")
        x = _axis(grid, "x")
        o = np.zeros(1) if origin is None else np.asarray(origin, float).reshape(1)
        return (x,), o[None, :], np.ascontiguousarray(x[:, None])
    try:
        gx, gy = grid
    except (TypeError, ValueError):
        raise ValueError("grid must be ((x_lo, x_hi, nx), (y_lo, y_hi, ny)) (or two coordinate arrays) "
                         f"for a {dim}-D loss")
    x, y = _axis(gx, "x"), _axis(gy, "y")
    if len(x) * len(y) > MAX_GRID_STARTS:
        raise ValueError(f"the grid has {len(x):,} × {len(y):,} = {len(x) * len(y):,} starts (at most {MAX_GRID_STARTS:,} "
                         f"in memory: about {len(x) * len(y) * 24 / 2**30:.0f} GiB here); use fa.sweep, which "
                         "runs chunks into a store, or a coarser grid")
    o = np.zeros(dim) if origin is None else np.asarray(origin, float).reshape(-1)
    U = np.eye(dim)[:2] if directions is None else np.asarray(directions, float)
    if o.shape != (dim,):
        raise ValueError(f"origin must have {dim} coordinates, got shape {o.shape}")
    if U.shape != (2, dim) or np.linalg.matrix_rank(U) < 2:
        raise ValueError(f"directions must be two independent vectors of length {dim}, got shape {U.shape}")
    return (x, y), np.ascontiguousarray(o + y[:, None] * U[1]), np.ascontiguousarray(x[:, None] * U[0])


def _cycle_points(loss, method, start, nsteps, p):
    """The p points of the cycle one start ended on: rerun it (every iterate kept) and rotate the
    last p iterates to begin at the lexicographically smallest, as the kernel's representative."""
    cyc = fc.descend(loss, start[None], method, steps=int(nsteps), escape_radius=np.inf).iterates[0, -p:]
    k = min(range(p), key=lambda j: tuple(cyc[j]))
    return np.roll(cyc, -k, axis=0)


@dataclass(frozen=True)
class Matching:
    """How rest points become labels: a fixed point within ``match_tol`` (relative) of a critical
    point of E (``critical``; None: all of them from sympy, else a Newton search around the grid)
    is matched to it, and the model's linear stability there decides attractor or unstable fixed
    point; a PF rest point with max|Im θ| ≤ ``imag_tol`` is real."""
    critical: tuple | None = None
    match_tol: float = 1e-4
    imag_tol: float = 1e-6

    def __post_init__(self):
        object.__setattr__(self, "match_tol", positive(self.match_tol, "match_tol"))
        object.__setattr__(self, "imag_tol", positive(self.imag_tol, "imag_tol"))
        if self.critical is not None:
            object.__setattr__(self, "critical", tuple(self.critical))


MATCHING = Matching()
REST = fc.RestTest()


def checked_method(method):
    """A basin map's model: a map value (GD, HeavyBall, Nesterov, DAL) or a flow value (NGF, PGF, IGR,
    ThirdOrder, PF)."""
    if not isinstance(method, (Optimizer, Flow)) or method.name not in MAPS + FLOWS:
        raise TypeError(f"method must be one of fc.GD(lr), fc.HeavyBall(lr, beta), fc.Nesterov(lr, beta), fc.DAL(), "
                        f"fc.NGF(lr), fc.PGF(lr), fc.IGR(lr), fc.ThirdOrder(lr), fc.PF(lr) (fc.method(name, lr=...) "
                        f"from a name), got {method!r}")
    return method


REST_FRACTION = 1e-3    # flows stop once ‖θ'‖ ≤ 1e-3 · tol (rest test of the kernel, 8 steps)


def _rest_tol(flow, tol):
    """The kernel's rest test for a flow's basins: far below the labelling tolerance, so a start
    passing near a saddle is not stopped there (it would have to come within ~1e-3 tol of it);
    0 (integrate to t_max) for a flow without a compiled kernel."""
    return REST_FRACTION * tol if fc.compiled(flow) else 0.0


def _row_max_abs(a):
    """max_k |a[i, k]| of each row of a [N, D] (NaN where a row has one): column by column for a
    few columns, where numpy's reduction along a short last axis is ~10× slower (7 ms against
    0.7 ms for 250 000 rows of 2)."""
    if a.shape[1] > 8:
        return np.max(np.abs(a), axis=1)
    out = np.abs(a[:, 0])
    for k in range(1, a.shape[1]):
        np.maximum(out, np.abs(a[:, k]), out=out)
    return out


def run_to_rest(loss, method, starts, rest=REST, compute=COMPUTE, progress=None):
    """Every start run by ``method`` until it rests, leaves, or runs out of budget — the work of one
    basin map (and of one chunk of a sweep). A map's rate may be one per start.
    Returns (final [N, D], status [N] (fc.Status; OK only at rest), nsteps, period (0: not at
    rest; 1 for a flow at rest), rest [N] bool, imag [N] (PF: max|Im θ| at rest, else 0))."""
    return _rest_runner(loss, method, rest, compute)(starts, progress)


def _rest_runner(loss, method, rest, compute, batch=None):
    """run(starts, progress=None): :func:`run_to_rest` for one loss and method, the flow built
    once for every batch of starts; a map with ``batch`` (the largest) runs its batches in
    buffers reused from one to the next (results valid until the next call)."""
    if method.kind == "map" and batch is not None:
        kernel = rest_batches(loss, method, rest, compute, batch)

        def run(starts, progress=None, steps_out=None):
            final, status, nsteps, period = kernel(starts, steps_out)     # (the kernel writes steps_out)
            return final, status, nsteps, period, period > 0, None
        return run
    if method.kind == "map":
        def run(starts, progress=None):
            r = fc.descend_to_rest(loss, starts, method, rest, compute, progress)
            return r.final, r.status, r.nsteps, r.period, r.period > 0, np.zeros(len(starts))
        return run
    tol = rest.tol_for("flow")
    flow = fc.models.model(method.name).build(loss, method.lr, **method.build_options())
    t_max = method.t_max if method.t_max is not None else rest.steps * method.lr
    rest_tol = _rest_tol(flow, tol)

    def run(starts, progress=None, steps_out=None):
        sol = fc.solve(flow, starts, t_eval=[float(t_max)], method=method.solver, escape_radius=rest.escape_radius,
                       rest_tol=rest_tol, compute=compute, progress=progress)
        final, status, nsteps = sol.y[:, 0], np.asarray(sol.status).copy(), sol.nsteps    # (rows contiguous)
        if steps_out is not None:
            steps_out[...] = nsteps
            nsteps = steps_out
        ok = status == fc.Status.OK
        at = final if ok.all() else final[ok]
        at_rest = ok.copy()
        at_rest[ok] = _row_max_abs(flow.evaluate(at, threads=compute.threads)[0]) / (1 + _row_max_abs(at)) <= tol
        status[ok & ~at_rest] = fc.Status.MAX_STEPS
        imag = (np.where(at_rest, _row_max_abs(final.imag), 0.0) if np.iscomplexobj(final)
                else np.zeros(len(starts)))
        return final, status, nsteps, at_rest.astype(np.intc), at_rest, imag
    return run


class _Block:
    """The rest points of one period (and, for the PF, real or not), grouped chunk by chunk; each
    group's id over the whole map, its first start (the row of the grid) and its largest
    max|Im θ|."""

    def __init__(self, dim, complex_, match_tol):
        self.grouping = Grouping(dim, complex_, match_tol)
        self.ids, self.first, self.residual = np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0)
        self.identity = True              # ids[k] = k: this block made every group so far

    def add(self, points, rows, imag, owners, threads, out=None):
        """The map-wide group ids of points [n, D] (in ``out`` when given and they are the local
        ones); ``rows``: their rows of the grid [n], or the first of n consecutive ones; ``owners``
        (a list, one entry per id so far) grows by the groups they start."""
        g, fed = self.grouping, self.grouping.rows
        local = g.add(points, threads, out)
        new = g.nc - len(self.ids)
        if new:
            self.identity &= len(owners) == len(self.ids)
            self.ids = np.concatenate([self.ids, np.arange(len(owners), len(owners) + new, dtype=np.int32)])
            pos = g.first_rows()[-new:] - fed                   # their first rows within these points
            self.first = np.concatenate([self.first, rows + pos if np.isscalar(rows) else rows[pos]])
            self.residual = np.concatenate([self.residual, np.zeros(new)])
            owners.extend([self] * new)
        if imag is not None and np.any(imag):
            np.maximum.at(self.residual, local, imag)
        return local if self.identity else self.ids[local]


def _label_chunk(lab, row0, final, status, period, at_rest, imag, blocks, owners, specials, imag_tol, match_tol,
                 threads):
    """The labels of a chunk (its first row: row0) into ``lab``: the special outcome's (< 0) where
    a start is not at rest, else its group's id (≥ 0, made labels at the end), grouping its rest
    point with those of the chunks before in ``blocks`` {(period, real): _Block}; ``specials``
    counts the outcomes."""
    n, D = final.shape
    top = int(period.max(initial=0))
    if top == 1 and period.min() == 1 and not np.iscomplexobj(final):   # (the common case: all at rest on fixed points)
        return _label_block(lab, row0, final, 1, slice(None), True, None, blocks, owners, match_tol, threads)
    n_rest = int(np.count_nonzero(at_rest))
    if n_rest < n:
        special = _SPECIAL_OF_STATUS[status[~at_rest]]
        lab[~at_rest] = special
        specials += np.bincount(special - NONFINITE, minlength=-NONFINITE)
    if n_rest == 0:
        return
    complex_ = np.iscomplexobj(final)
    real_rest = at_rest & (imag <= imag_tol) if complex_ else at_rest
    # how many starts rest with each period (0 exactly where a start is not at rest); a few
    # counts of one value are faster than np.bincount's conversion of int32
    per_period = (np.array([np.count_nonzero(period == p) for p in range(top + 1)]) if top <= 8
                  else np.bincount(period))
    for p in np.flatnonzero(per_period[1:]) + 1:
        for real in ((True, False) if complex_ else (True,)):
            if complex_:
                sel = np.flatnonzero(at_rest & (period == p) & (real_rest == real))
            else:
                sel = slice(None) if per_period[p] == n else np.flatnonzero(period == p)
            _label_block(lab, row0, final, int(p), sel, real, imag[sel] if complex_ else None, blocks, owners,
                         match_tol, threads)


def _label_block(lab, row0, final, p, sel, real, imag, blocks, owners, match_tol, threads):
    """The group ids of the chunk's starts ``sel`` (at rest with period p; real or not) into lab."""
    points = final[sel]                      # (a view when every start is in)
    if len(points) == 0:
        return
    key = (p, real)
    if key not in blocks:
        blocks[key] = _Block(final.shape[1], np.iscomplexobj(final) and not real, match_tol)
    block, points = blocks[key], points.real if real else points
    if isinstance(sel, slice):               # every start of the chunk: ids written in place when they can be
        ids = block.add(points, row0, imag, owners, threads, out=lab)
        if ids is not lab:
            lab[...] = ids
    else:
        lab[sel] = block.add(points, row0 + sel, imag, owners, threads)


def basins(loss: fc.Loss, method, grid, *, rest: fc.RestTest = REST, matching: Matching = MATCHING, plane=None,
           compute: fc.Compute = COMPUTE, progress=None):
    """Basins of attraction of ``method`` on a grid of starts.

    method: a map value (fc.GD(lr), fc.HeavyBall(lr, beta), fc.Nesterov(lr, beta), fc.DAL(power,
    lr_cap)) run for at most ``rest.steps`` iterations, or a flow value (fc.NGF(lr), fc.PGF,
    fc.IGR, fc.ThirdOrder, fc.PF(lr, nonprincipal=...)) integrated by its ``solver`` to its
    ``t_max`` (default rest.steps·lr, the time GD's steps model).
    grid: see :func:`grid_points`; ``plane``: (origin, directions) of the plane of starts for D > 2.
    rest: a :class:`flowcore.RestTest`. Maps: a recurrence of period ≤ max_period within tol
    (default 1e-10) that holds at ``confirm`` consecutive iterations. Flows: ‖θ'‖∞ ≤ tol(1 +
    ‖θ‖∞) at t_max (default 1e-5, above the solver's noise floor near a stiff rest point); a start
    whose speed stays below 1e-3·tol for 8 steps stops there (compiled flows), the rest is not
    integrated. matching: a :class:`Matching` (critical points, match_tol, imag_tol).
    compute: a :class:`flowcore.Compute` (device, threads, chunk: starts run and labelled at a
    time, default 16 384 on the CPU). progress: a tqdm bar (default None: shown when the
    measured rate says the run takes more than a few seconds). Ctrl-C raises
    :class:`flowcore.Interrupted`; nothing is labelled. Returns a :class:`Basins`.

    The rest points are grouped (:func:`flowcore.cluster_points`' rule) chunk by chunk while
    they are in cache, with the same groups as one pass over them all: no array of all the final
    points is made.
    """
    if not isinstance(loss, fc.Loss):
        raise TypeError(f"loss must be a flowcore.Loss, got {type(loss).__name__}")
    method = checked_method(method)
    if isinstance(method.lr if method.uses_lr else 0.0, np.ndarray):
        raise ValueError("a basin map takes one learning rate (fa.sweep runs a grid of rates)")
    if not isinstance(rest, fc.RestTest):
        raise TypeError(f"rest must be a flowcore.RestTest(tol=, max_period=, confirm=, steps=), got {rest!r}")
    if not isinstance(matching, Matching):
        raise TypeError(f"matching must be a flowcore.analysis.Matching(critical=, match_tol=, imag_tol=), got {matching!r}")
    if not isinstance(compute, fc.Compute):
        raise TypeError(f"compute must be a flowcore.Compute(device=, threads=, chunk=), got {compute!r}")
    origin, directions = _plane(plane)
    model, lr = method.name, (method.lr if method.uses_lr else None)
    imag_tol, match_tol = matching.imag_tol, matching.match_tol
    axes, grid_a, grid_b = _grid_parts(loss.dim, grid, origin, directions)
    shape = tuple(len(ax) for ax in axes[::-1])
    N, D = int(np.prod(shape)), loss.dim
    # chunk by chunk on the CPU; a GPU takes the whole map at once
    gpu = _kernels.choose_device(compute.device, N) != "cpu" and _kernels.gpu_usable(compute.device)
    chunk = N if gpu else compute.chunk_or(1 << 14)

    buffer = np.empty((min(N, chunk), D))

    def starts(lo, hi):                   # rows lo..hi − 1 of the grid's starts (row-major), made for a chunk
        _outer_rows(grid_a, grid_b, lo, buffer[:hi - lo])
        return buffer[:hi - lo]
    corners = np.stack([grid_a.min(axis=0) + grid_b.min(axis=0), grid_a.max(axis=0) + grid_b.max(axis=0)])
    critical = _critical(loss, corners) if matching.critical is None else list(matching.critical)
    is_map = method.kind == "map"
    tol = rest.tol_for(method.kind)
    T = None if is_map else (rest.steps * lr if method.t_max is None else method.t_max)
    beta = getattr(method, "beta", 0.9)

    run = _rest_runner(loss, method, rest, compute if gpu else replace(compute, device="cpu"), batch=chunk)
    labels = np.empty(N, np.int32)        # < 0: a special outcome; ≥ 0: a group, made a label at the end
    imag = None                           # (made for complex states only)
    nsteps = np.empty(N, np.intc if is_map else np.int64)    # (a map's: written by its kernel's threads)
    blocks, owners = {}, []               # {(period, real): _Block}; the _Block of each group id
    specials = np.zeros(-NONFINITE, np.int64)
    bar = Progress(N, f"{model} basins", "start", progress)
    done = 0
    try:
        for lo in range(0, N, chunk):
            sl = slice(lo, min(N, lo + chunk))
            final, status, _, period, at_rest, im = run(starts(sl.start, sl.stop), False, nsteps[sl])
            if np.iscomplexobj(final):
                if imag is None:
                    imag = np.zeros(N)
                imag[sl] = im
            _label_chunk(labels[sl], lo, final, status, period, at_rest, im, blocks, owners, specials, imag_tol,
                         match_tol, compute.threads)
            done = sl.stop
            bar.update(sl.stop - sl.start)
    except KeyboardInterrupt:
        raise fc.Interrupted(None, "fa.basins", f"nothing is labelled ({done} of {N} starts had run)") from None
    finally:
        bar.close()

    # attractors: fixed points (period 1; PF: real once Im has decayed) and cycles, in the order
    # of their blocks (period, real first) and of their groups
    cps = [c for c in critical if np.all(np.isfinite(c.point))]
    new = []                              # (Label, group id, size)
    for (p, real), block in sorted(blocks.items(), key=lambda kb: (kb[0][0], not kb[0][1])):
        g = block.grouping
        for k, (rep, first, size) in enumerate(zip(g.representatives(), block.first, g.sizes())):
            pts_ = _cycle_points(loss, method, starts(first, first + 1)[0], nsteps[first], p) if p > 1 else rep[None, :]
            cp, kind = None, "cycle" if p > 1 else "fixed point"
            if p == 1 and np.all(np.abs(pts_.imag) <= imag_tol):
                for c in cps:
                    if np.max(np.abs(pts_[0].real - c.point)) <= match_tol * (1 + np.max(np.abs(c.point))):
                        cp = c
                        break
                if cp is not None:
                    pts_ = cp.point[None, :].astype(pts_.dtype)
                    if not _attracts(cp, model, lr, beta):
                        kind = "unstable fixed point"
            label = Label(0, kind, pts_ if np.any(pts_.imag) else pts_.real, cp,
                          imag_residual=float(block.residual[k]))
            new.append((label, int(block.ids[k]), int(size)))
    # a stable order: attractors by period and position, then the unstable points
    new.sort(key=lambda e: (not e[0].attractor, len(e[0].points), tuple(np.real(e[0].points[0]))))
    table = np.empty(len(owners), np.int64)
    counts = np.zeros(len(new) - NONFINITE, np.int64)                       # specials are ≥ NONFINITE
    counts[:-NONFINITE] = specials
    for label, (e, gid, size) in enumerate(new):
        e.label = label
        table[gid] = label
        counts[label - NONFINITE] = size
    _relabel(labels, table, threads(compute.threads, N // 4096))             # groups become labels in place
    entries = [e for e, _, _ in new] + [Label(code, _SPECIAL_NAMES[code], np.empty((0, D)))
                                        for code in (ESCAPED, UNRESOLVED, SINGULAR, NONFINITE)
                                        if counts[code - NONFINITE]]
    for e in entries:
        e.count = int(counts[e.label - NONFINITE])
        e.fraction = e.count / N
    settings = {"method": repr(method), "steps": rest.steps, "tol": tol, "max_period": rest.max_period,
                "confirm": rest.confirm, "escape_radius": rest.escape_radius, "imag_tol": imag_tol, "match_tol": match_tol}
    if D > 2:       # the plane of starts: origin + x·u + y·v
        settings.update(origin=np.zeros(D).tolist() if origin is None else np.asarray(origin, float).ravel().tolist(),
                        directions=np.eye(D)[:2].tolist() if directions is None else np.asarray(directions, float).tolist())
    if not is_map:
        settings.update(t_max=float(T))
    imag = np.broadcast_to(0.0, shape) if imag is None else imag.reshape(shape)     # (real states: a view of one 0)
    return Basins(labels.reshape(shape), axes, entries, model, float(lr or 0.0), imag,
                  nsteps.reshape(shape), settings, list(critical),
                  None if loss.vars is None else tuple(str(v) for v in loss.vars), (grid_a, grid_b))


_SPECIAL_OF_STATUS = np.array([_SPECIAL.get(st, UNRESOLVED) for st in fc.Status], np.int64)   # by status value


_LISTED = {}     # (expression, variables) -> critical_points(loss): a sweep or a tour maps the same
                 # loss many times, and the list with its Newton cross-check costs 30–50 ms


def _critical(loss, starts):
    """All critical points when sympy can list them; else a Newton search in a box three times
    the extent of ``starts`` (the grid's, or its bounding corners: attractors may lie off the
    slice)."""
    try:
        if loss.expr is None:
            return critical_points(loss)
        key = (str(loss.expr), tuple(map(str, loss.vars)))
        if key not in _LISTED:
            _LISTED[key] = critical_points(loss)
        return _LISTED[key]
    except ValueError:
        lo, hi = starts.min(axis=0), starts.max(axis=0)
        half = 1.5 * max(float(np.max(hi - lo)), 1.0)
        mid = (lo + hi) / 2
        return critical_points(loss, box=list(zip(mid - half, mid + half)))


def _attracts(cp, model, lr, beta):
    """Does ``model`` attract the critical point cp (linear stability)?"""
    if model in MODELS:
        return stability(cp, lr, models=(model,), beta=beta)[model]["verdict"] == "attractive"
    return cp.kind == "min"     # dal: minima attract at the rates that come to rest
