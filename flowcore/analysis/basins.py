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

from dataclasses import dataclass, field

import numpy as np

import flowcore as fc
from flowcore.analysis.critical import MODELS, critical_points, stability
from flowcore.analysis.dynamics import basin_entropy
from flowcore.engine._descend import _outer_sum, _relabel
from flowcore.engine.checks import positive, threads
from flowcore.solvers.methods import COMPUTE, Flow, Optimizer
from flowcore.solvers.optim import _clusters

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
    starts: np.ndarray             # [..., D] the starting points
    entries: list                  # one Label per label value present
    model: str
    lr: float
    imag_residual: np.ndarray      # per start (0 for real models)
    nsteps: np.ndarray             # map iterations (maps) or accepted steps (flows), per start
    settings: dict = field(default_factory=dict)
    critical: list = field(default_factory=list)   # the critical points of E used for matching
    vars: tuple | None = None      # the loss's variable names (for axis labels), when it has them

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
    if dim == 1:
        if isinstance(grid, (list, tuple)) and any(isinstance(g, (list, tuple, np.ndarray)) for g in grid):
            raise ValueError("this loss is 1-D: grid is one axis, (lo, hi, n) or an array of coordinates, "
                             f"not {grid!r}")
        x = _axis(grid, "x")
        o = np.zeros(1) if origin is None else np.asarray(origin, float).reshape(1)
        return (x,), (o + x[:, None])
    try:
        gx, gy = grid
    except (TypeError, ValueError):
        raise ValueError("grid must be ((x_lo, x_hi, nx), (y_lo, y_hi, ny)) (or two coordinate arrays) "
                         f"for a {dim}-D loss")
    x, y = _axis(gx, "x"), _axis(gy, "y")
    if len(x) * len(y) > MAX_GRID_STARTS:
        raise ValueError(f"the grid has {len(x):,} × {len(y):,} = {len(x) * len(y):,} starts (at most {MAX_GRID_STARTS:,} "
                         f"in memory: about {len(x) * len(y) * (dim + 4) * 8 / 2**30:.0f} GiB here); use fa.sweep, which "
                         "runs chunks into a store, or a coarser grid")
    o = np.zeros(dim) if origin is None else np.asarray(origin, float).reshape(-1)
    U = np.eye(dim)[:2] if directions is None else np.asarray(directions, float)
    if o.shape != (dim,):
        raise ValueError(f"origin must have {dim} coordinates, got shape {o.shape}")
    if U.shape != (2, dim) or np.linalg.matrix_rank(U) < 2:
        raise ValueError(f"directions must be two independent vectors of length {dim}, got shape {U.shape}")
    pts = np.empty((len(y), len(x), dim))      # (o + y v) + x u, rows on all cores
    _outer_sum(o + y[:, None] * U[1], np.ascontiguousarray(x[:, None] * U[0]), pts, threads(None, len(y) // 64))
    return (x, y), pts


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


def run_to_rest(loss, method, starts, rest=REST, compute=COMPUTE, progress=None):
    """Every start run by ``method`` until it rests, leaves, or runs out of budget — the work of one
    basin map (and of one chunk of a sweep). A map's rate may be one per start.
    Returns (final [N, D], status [N] (fc.Status; OK only at rest), nsteps, period (0: not at
    rest; 1 for a flow at rest), rest [N] bool, imag [N] (PF: max|Im θ| at rest, else 0))."""
    N = len(starts)
    imag = np.zeros(N)
    if method.kind == "map":
        r = fc.descend_to_rest(loss, starts, method, rest, compute, progress)
        return r.final, r.status, r.nsteps, r.period, r.period > 0, imag
    tol = rest.tol_for("flow")
    flow = fc.models.model(method.name).build(loss, method.lr, **method.build_options())
    t_max = method.t_max if method.t_max is not None else rest.steps * method.lr
    sol = fc.solve(flow, starts, t_span=(0.0, float(t_max)), method=method.solver, escape_radius=rest.escape_radius,
                   rest_tol=_rest_tol(flow, tol), compute=compute, progress=progress)
    final, status, nsteps = sol.y[:, -1], np.asarray(sol.status).copy(), sol.nsteps
    ok = status == fc.Status.OK
    speed = np.full(N, np.inf)
    if np.any(ok):
        speed[ok] = np.max(np.abs(flow(final[ok])), axis=-1) / (1 + np.max(np.abs(final[ok]), axis=-1))
    at_rest = ok & (speed <= tol)
    status = np.where(ok & ~at_rest, fc.Status.MAX_STEPS, status)
    if np.iscomplexobj(final):
        imag = np.where(at_rest, np.max(np.abs(final.imag), axis=-1), 0.0)
    return final, status, nsteps, at_rest.astype(np.intc), at_rest, imag


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
    compute: a :class:`flowcore.Compute` (device, threads). progress: a tqdm bar (default None:
    shown when the measured rate says the run takes more than a few seconds). Ctrl-C raises
    :class:`flowcore.Interrupted`; nothing is labelled. Returns a :class:`Basins`.
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
    origin, directions = _plane(plane)
    model, lr = method.name, (method.lr if method.uses_lr else None)
    imag_tol, match_tol = matching.imag_tol, matching.match_tol
    axes, pts = grid_points(loss.dim, grid, origin, directions)
    shape = pts.shape[:-1]
    starts = np.ascontiguousarray(pts.reshape(-1, loss.dim))
    N, D = starts.shape
    critical = _critical(loss, starts) if matching.critical is None else list(matching.critical)

    is_map = method.kind == "map"
    tol = rest.tol_for(method.kind)
    T = None if is_map else (rest.steps * lr if method.t_max is None else method.t_max)
    final, status, nsteps, period, at_rest, imag = run_to_rest(loss, method, starts, rest, compute, progress)
    beta = getattr(method, "beta", 0.9)

    # attractors: fixed points (period 1; PF: real once Im has decayed) and cycles, clustered.
    # Each clustered block is labelled at the end through a table (group -> label): one pass
    # over the block, not a mask per attractor. (Every pass here is over 10⁶ starts on one
    # thread, after a kernel that took ~0.1 s on two: the masks are made only where needed.)
    complex_ = np.iscomplexobj(final)
    real_rest = at_rest & (imag <= imag_tol) if complex_ else at_rest
    # how many starts rest with each period (0 exactly where a start is not at rest); a few
    # counts of one value are faster than np.bincount's conversion of 10⁶ int32
    top = int(period.max(initial=0))
    per_period = (np.array([np.count_nonzero(period == p) for p in range(top + 1)]) if top <= 8
                  else np.bincount(period))
    found, blocks = [], []                       # (period, points [p, D], residual, block, group)
    for p in np.flatnonzero(per_period[1:]) + 1:
        for real in ((True, False) if complex_ else (True,)):
            if complex_:
                sel = np.flatnonzero(at_rest & (period == p) & (real_rest == real))
            else:
                sel = slice(None) if per_period[p] == N else np.flatnonzero(period == p)
            whole = final[sel]                   # (a view when every start is in)
            if len(whole) == 0:
                continue
            reps, idx, sizes = _clusters(whole.real if real else whole, match_tol, threads=compute.threads)
            residual = np.zeros(len(reps))
            if complex_ and np.any(imag[sel]):
                np.maximum.at(residual, idx, imag[sel])
            blocks.append((sel, idx, sizes))
            for k, rep in enumerate(reps):
                if p > 1:
                    j = int(np.argmax(idx == k))                    # the cycle's first start
                    i = j if isinstance(sel, slice) else sel[j]
                    pts_ = _cycle_points(loss, method, starts[i], nsteps[i], int(p))
                else:
                    pts_ = rep[None, :]
                found.append((int(p), pts_, float(residual[k]), len(blocks) - 1, k))
    cps = [c for c in critical if np.all(np.isfinite(c.point))]
    new = []
    for p, pts_, residual, block, k in found:
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
        new.append((Label(0, kind, pts_ if np.any(pts_.imag) else pts_.real, cp, imag_residual=residual), block, k))
    # a stable order: attractors by period and position, then the unstable points
    new.sort(key=lambda ebk: (not ebk[0].attractor, len(ebk[0].points), tuple(np.real(ebk[0].points[0]))))
    tables = [np.empty(len(sizes), np.int64) for _, _, sizes in blocks]
    counts = np.zeros(len(new) - NONFINITE, np.int64)                       # specials are ≥ NONFINITE
    for label, (e, block, k) in enumerate(new):
        e.label = label
        tables[block][k] = label
        counts[label - NONFINITE] = blocks[block][2][k]
    if len(blocks) == 1 and isinstance(blocks[0][0], slice):
        labels = blocks[0][1]                    # every start at rest, in one block: its groups
        _relabel(labels, tables[0], threads(compute.threads, N // 4096))     # become labels in place
    else:
        labels, special = _special_labels(status, at_rest)
        counts[:-NONFINITE] = special
        for (sel, idx, _), table in zip(blocks, tables):
            labels[sel] = table[idx]
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
    return Basins(labels.reshape(shape), axes, pts, entries, model, float(lr or 0.0),
                  imag.reshape(shape), np.asarray(nsteps).reshape(shape), settings, list(critical),
                  None if loss.vars is None else tuple(str(v) for v in loss.vars))


_SPECIAL_OF_STATUS = np.array([_SPECIAL.get(st, UNRESOLVED) for st in fc.Status], np.int64)   # by status value


def _special_labels(status, rest):
    """The label of every start: its special outcome's (ESCAPED, UNRESOLVED, …) where it is not at
    rest (a start at rest is labelled later); and how many starts have each special outcome
    (indexed by label − NONFINITE)."""
    labels = np.full(len(status), UNRESOLVED, np.int64)
    special = _SPECIAL_OF_STATUS[status[~rest]]
    labels[~rest] = special
    return labels, np.bincount(special - NONFINITE, minlength=-NONFINITE)


_LISTED = {}     # (expression, variables) -> critical_points(loss): a sweep or a tour maps the same
                 # loss many times, and the list with its Newton cross-check costs 30–50 ms


def _critical(loss, starts):
    """All critical points when sympy can list them; else a Newton search in a box three times
    the grid's extent (attractors may lie off the slice)."""
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
