# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batched discrete optimizers: GD, heavy ball, Nesterov, DAL-p (+ momentum, per-parameter).

Trajectories are processed in blocks of BLOCK: one loss call evaluates a block's
points per step; blocks run in parallel (OpenMP) and each trajectory keeps its own
status, so results do not depend on the thread count or on the batch.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport sqrt, pow, fabs, isfinite, NAN, INFINITY
from libc.stdlib cimport calloc, malloc, free
from libc.stdint cimport int64_t
from flowcore._loss cimport Loss
from flowcore._abi cimport (FC_OK, FC_ESCAPED, FC_NONFINITE, FC_INTERRUPTED, fc_interrupt_pending,
                            take_sigint, give_sigint)

cnp.import_array()

cdef enum:
    BLOCK = 64

cdef enum:
    GD, HEAVY_BALL, NESTEROV, DAL, DAL_MOMENTUM, DAL_PER_PARAM

METHODS = {"gd": GD, "heavy_ball": HEAVY_BALL, "nesterov": NESTEROV, "dal": DAL,
           "dal_momentum": DAL_MOMENTUM, "dal_per_param": DAL_PER_PARAM}


cdef struct Params:
    int method, D, steps
    int keep        # iterates kept per trajectory: a ring of the last `keep` (steps+1: all)
    int pmax        # > 0: stop once ‖θ_k − θ_{k−p}‖∞ ≤ tol(1 + ‖θ_k‖∞) for some p ≤ pmax
    int confirm     # ... holds with the same p at `confirm` consecutive steps (so that a start
                    # a hair off an unstable fixed point is not taken for being at rest)
    double beta, power, cap, radius, tol    # (the learning rates are per trajectory: lr_rows)


cdef inline double _dal_rate(const Params *P, double hg, double gn) noexcept nogil:
    """DAL-p's rate 2 / (‖H g‖/‖g‖)^p (per coordinate: |(H g)_a|/‖g‖), capped at P.cap when
    P.cap > 0; at g = 0 the cap (or 0)."""
    cdef double h = 2.0 / pow(hg / gn, P.power) if gn > 0 else (P.cap if P.cap > 0 else 0.0)
    return P.cap if P.cap > 0 and h > P.cap else h


cdef bint _recurs(const Params *P, const double *old, const double *cur) noexcept nogil:
    """‖cur − old‖∞ ≤ tol(1 + ‖cur‖∞)?"""
    cdef int a
    cdef double scale = 0, d = 0
    for a in range(P.D):
        scale = max(scale, fabs(cur[a]))
        d = max(d, fabs(cur[a] - old[a]))
    return d <= P.tol * (1 + scale)


cdef int _period(const Params *P, const double *ring, const int *slot, const double *cur, int k,
                 int candidate) noexcept nogil:
    """The recurrence period to count at step k (θ_{k+1−p} is at ring slot[p]): the running
    candidate's if it still holds; else the smallest p (p = 1 every step, all p ≤ pmax every
    pmax steps, which bounds the cost and delays finding a cycle by at most pmax steps)."""
    cdef int p, top
    if candidate > 0:
        return candidate if _recurs(P, ring + slot[candidate] * P.D, cur) else 0
    top = min(P.pmax if k % P.pmax == 0 else 1, k + 1)
    for p in range(1, top + 1):
        if _recurs(P, ring + slot[p] * P.D, cur):
            return p
    return 0


cdef int _smallest_period(const Params *P, const double *ring, const int *slot, const double *cur,
                          int p) noexcept nogil:
    """The smallest divisor d of a confirmed period p with θ_k ≈ θ_{k−d}: a start converging by
    damped oscillation (1 − hλ < 0) passes the p = 2 test before the p = 1 test, and a "cycle"
    whose points coincide within tol is a fixed point."""
    cdef int d
    for d in range(1, p):
        if p % d == 0 and _recurs(P, ring + slot[d] * P.D, cur):
            return d
    return p


cdef double _path(const Params *P, const double *ring, const int *slot, const double *cur, int p,
                  double *scale) noexcept nogil:
    """Σ_j ‖θ_{k+2−j} − θ_{k+1−j}‖∞, j = 1..p (θ_{k+1} = cur): the length of the last p steps,
    the same at every phase of a p-cycle; and the scale ‖cur‖∞."""
    cdef int j, a
    cdef double L = 0, d
    cdef const double *u = cur
    cdef const double *v
    scale[0] = 0
    for a in range(P.D):
        scale[0] = max(scale[0], fabs(cur[a]))
    for j in range(1, p + 1):
        v = ring + slot[j] * P.D
        d = 0
        for a in range(P.D):
            d = max(d, fabs(u[a] - v[a]))
        L += d
        u = v
    return L


cdef void _representative(const Params *P, const double *ring, int n, int p, double *rep) noexcept nogil:
    """The lexicographically smallest of the last p iterates θ_{n−p+1..n} (ring slots j % keep):
    one point that names the cycle whatever the phase it was caught in."""
    cdef int j, a, best = n
    cdef const double *u
    cdef const double *v
    for j in range(n - p + 1, n):
        u = ring + (j % P.keep) * P.D
        v = ring + (best % P.keep) * P.D
        for a in range(P.D):
            if u[a] != v[a]:
                if u[a] < v[a]:
                    best = j
                break
    for a in range(P.D):
        rep[a] = ring[(best % P.keep) * P.D + a]


cdef int _block(Loss loss, const Params *P, int64_t m, const double *lr_rows, double *X, double *rates,
                int *status, int *nsteps, int *period) noexcept nogil:
    """Run m trajectories. pmax = 0: X [m, steps+1, D] holds θ0 at slot 0 on entry and every
    iterate on exit. pmax > 0: X [m, D] holds θ0 on entry and, on exit, the final iterate, or
    for a trajectory that recurred with period p, the representative of its p-cycle; the ring
    of the last pmax+1 iterates is scratch. rates may be NULL."""
    cdef int D = P.D, steps = P.steps, keep = P.keep, k, a, b, p, rc = 0, active
    cdef int64_t i
    cdef double *out = X
    if P.pmax > 0:
        X = <double*> malloc(m * keep * D * sizeof(double))
        if X == NULL:
            return -2
        for i in range(m):
            for a in range(D):
                X[i * keep * D + a] = out[i * D + a]
    cdef bint need_H = P.method >= DAL, per_param = P.method == DAL_PER_PARAM
    cdef bint momentum = P.method == HEAVY_BALL or P.method == NESTEROV or P.method == DAL_MOMENTUM
    cdef double *buf = <double*> malloc(m * D * (6 + D) * sizeof(double))
    if buf == NULL:
        if out != X:
            free(X)
        return -2
    cdef double *cur = buf                      # θ_n
    cdef double *vel = buf + m * D              # θ_n − θ_{n−1}
    cdef double *y = buf + 2 * m * D            # where the gradient is taken
    cdef double *g = buf + 3 * m * D
    cdef double *H = buf + 4 * m * D
    cdef double *live = buf + (4 + D) * m * D   # 1 while the row runs, 0 once it stopped
    cdef double *lr_elem = buf + (5 + D) * m * D  # each row's learning rate, per coordinate
    cdef int *streak = <int*> malloc((2 * m + P.pmax + 1) * sizeof(int))
    if streak == NULL:
        free(buf)
        if out != X:
            free(X)
        return -2
    cdef int *candidate = streak + m
    cdef int *slot = streak + 2 * m             # slot[p]: where θ_{k+1−p} sits in the ring
    cdef double *path0 = <double*> calloc(m, sizeof(double))   # a cycle's step length when first seen
    cdef double scale
    if path0 == NULL:
        free(buf)
        free(streak)
        if out != X:
            free(X)
        return -2
    cdef double radius2 = P.radius * P.radius
    cdef double hg, gn, r, h, s, norm2
    for i in range(m):
        status[i], nsteps[i], period[i], streak[i], candidate[i] = FC_OK, 0, 0, 0, 0
        for a in range(D):
            cur[i * D + a] = X[i * keep * D + a]
            vel[i * D + a] = 0
            if not isfinite(cur[i * D + a]):
                status[i] = FC_NONFINITE
        for a in range(D):
            live[i * D + a] = status[i] == FC_OK
            lr_elem[i * D + a] = lr_rows[i]
    for k in range(steps):
        active = 0
        for i in range(m):
            active += status[i] == FC_OK and period[i] == 0
        if active == 0:
            break
        if fc_interrupt_pending():
            for i in range(m):
                if status[i] == FC_OK and period[i] == 0:
                    status[i] = FC_INTERRUPTED
            break
        for p in range(min(P.pmax, k + 1) + 1):
            slot[p] = (k + 1 - p) % keep
        if P.method == NESTEROV:
            for i in range(m * D):
                y[i] = cur[i] + P.beta * vel[i]
        rc = loss.c.eval_d(loss.c.ctx, m, y if P.method == NESTEROV else cur, NULL, NULL, g,
                           H if need_H else NULL, NULL)
        if rc != 0:
            break
        if not need_H:                         # gd, heavy ball, Nesterov: a branch-free update
            for i in range(m * D):
                r = live[i] * (P.beta * vel[i] - lr_elem[i] * g[i])
                vel[i] = r
                cur[i] += r
        for i in range(m):
            if status[i] != FC_OK or period[i] != 0:
                continue
            h = lr_rows[i]
            if not need_H:
                norm2 = 0
                for a in range(D):
                    norm2 += cur[i * D + a] * cur[i * D + a]
            elif not per_param:                # DAL-p: h = 2 / ‖H ĝ‖^p
                gn, hg = 0, 0
                for a in range(D):
                    gn += g[i * D + a] * g[i * D + a]
                    s = 0
                    for b in range(D):
                        s += H[(i * D + a) * D + b] * g[i * D + b]
                    hg += s * s
                gn, hg = sqrt(gn), sqrt(hg)
                h = _dal_rate(P, hg, gn)
                if rates != NULL:
                    rates[i * steps + k] = h
            if need_H:
                norm2 = 0
                if per_param:
                    gn = 0
                    for b in range(D):
                        gn += g[i * D + b] * g[i * D + b]
            for a in range(D if need_H else 0):
                if per_param:                  # h_a = 2 / |(H ĝ)_a|^p
                    s = 0
                    for b in range(D):
                        s += H[(i * D + a) * D + b] * g[i * D + b]
                    h = _dal_rate(P, fabs(s), sqrt(gn))
                    if rates != NULL:
                        rates[(i * steps + k) * D + a] = h
                r = -h * g[i * D + a]
                if momentum:
                    r = r + P.beta * vel[i * D + a]
                vel[i * D + a] = r
                cur[i * D + a] += r
                norm2 += cur[i * D + a] * cur[i * D + a]
            nsteps[i] = k + 1
            if not isfinite(norm2):
                status[i] = FC_NONFINITE
            elif norm2 > radius2:
                status[i] = FC_ESCAPED
            elif P.pmax > 0:
                p = _period(P, X + i * keep * D, slot, cur + i * D, k, candidate[i])
                streak[i] = streak[i] + 1 if p > 0 and p == candidate[i] else (p > 0)
                candidate[i] = p
                if streak[i] == 1 and p > 1:
                    path0[i] = _path(P, X + i * keep * D, slot, cur + i * D, p, &scale)
                if streak[i] >= P.confirm:
                    b = _smallest_period(P, X + i * keep * D, slot, cur + i * D, p)
                    # a cycle that shrank over the confirmation is a damped oscillation (maps.h)
                    if b > 1 and (_path(P, X + i * keep * D, slot, cur + i * D, p, &scale)
                                  < path0[i] - 2 * p * P.tol * (1 + scale)):
                        streak[i], candidate[i] = 0, 0
                    else:
                        period[i] = b
            for a in range(D):
                X[(i * keep + slot[0]) * D + a] = cur[i * D + a]
                if status[i] != FC_OK or period[i] != 0:
                    live[i * D + a] = 0
    if out != X:
        for i in range(m):
            _representative(P, X + i * keep * D, nsteps[i], max(period[i], 1), out + i * D)
        free(X)
    free(buf)
    free(streak)
    free(path0)
    return rc


def _descend(Loss loss, double[:, ::1] theta0, int steps, str method, lr, double beta,
             double power, double cap, double radius, int threads, int pmax=0, double tol=0,
             int confirm=1):
    """pmax = 0: every iterate [N, steps+1, D] and the rates. pmax > 0: iterate until the first
    recurrence of period ≤ pmax (held `confirm` steps) and return [N, D]: the final iterate, or
    the lexicographically smallest point of the cycle (period > 1); rates are None. The last
    value says whether Ctrl-C stopped the run (unfinished rows: FC_INTERRUPTED). ``lr``: one
    learning rate, or one per trajectory [N] (an orbit diagram runs all its rates at once)."""
    cdef Params P
    P.method, P.D, P.steps = METHODS[method], loss.dim, steps
    P.beta, P.power, P.cap, P.radius = beta, power, cap, radius
    P.pmax, P.tol, P.confirm = pmax, tol, confirm
    P.keep = steps + 1 if pmax == 0 else pmax + 1
    cdef int64_t N = theta0.shape[0], nb = (N + BLOCK - 1) // BLOCK, blk, i0, m
    cdef int D = loss.dim
    lr_array = np.ascontiguousarray(np.broadcast_to(np.asarray(lr, dtype=np.float64), (N,)))
    cdef const double *plr = <const double*> cnp.PyArray_DATA(lr_array) if N else NULL
    if pmax == 0:
        X = np.full((N, P.keep, D), np.nan)
        X[:, 0] = theta0
    else:
        X = np.array(theta0, dtype=np.float64, copy=True)
    per_param = P.method == DAL_PER_PARAM
    rates = None
    if pmax == 0:
        rates = np.full((int(N), steps) + ((D,) if per_param else ()), np.nan)
        if P.method < DAL:
            rates[...] = lr_array.reshape((int(N),) + (1,) * (rates.ndim - 1))
    status = np.zeros(N, dtype=np.intc)
    nsteps = np.zeros(N, dtype=np.intc)
    period = np.zeros(N, dtype=np.intc)
    cdef double *px = <double*> cnp.PyArray_DATA(X)
    cdef int64_t xstride = (P.keep if pmax == 0 else 1) * D
    cdef double *pr = NULL if rates is None else <double*> cnp.PyArray_DATA(rates)
    cdef int[::1] st = status
    cdef int[::1] ns = nsteps
    cdef int[::1] per = period
    cdef int rc = 0, rcb
    cdef int64_t rstride = steps * (D if per_param else 1)
    if N == 0 or steps == 0:
        return X, rates, status, nsteps, period, False
    loss._error = None
    cdef bint taken = take_sigint()
    try:
        for blk in prange(nb, nogil=True, num_threads=threads, schedule="dynamic"):
            i0 = blk * BLOCK
            m = N - i0 if N - i0 < BLOCK else BLOCK
            rcb = _block(loss, &P, m, plr + i0, px + i0 * xstride, NULL if pr == NULL else pr + i0 * rstride,
                         &st[i0], &ns[i0], &per[i0])
            rc += rcb != 0
    finally:
        interrupted = give_sigint(taken)
    if rc != 0:
        err, loss._error = loss._error, None
        if err is not None:
            raise err
        raise RuntimeError(f"loss {loss.name!r} failed during descend")
    return X, rates, status, nsteps, period, interrupted


ctypedef fused point_t:
    double
    double complex


def _cluster_rows(point_t[:, ::1] points, double tol, int64_t average=1024):
    """Greedy grouping in one pass: each row joins the first centre (in order of creation) with
    max_k |row_k − centre_k| ≤ tol (1 + max_k |centre_k|), else becomes a centre. The same
    groups as repeated sweeps "the first unassigned row is a centre, its group all unassigned
    rows near it" (a row near no earlier centre is the next centre). Returns (the group of each
    row, the sum of each group's first ``average`` members, their count)."""
    cdef int64_t n = points.shape[0], D = points.shape[1], i, c, k, nc = 0, cap = 16
    cdef double d, scale
    idx = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] group = idx
    dtype = np.asarray(points).dtype
    centres, radius = np.empty((cap, D), dtype=dtype), np.empty(cap)
    cdef point_t[:, ::1] cen = centres          # the centres' coordinates, contiguous
    cdef double[::1] rad = radius
    for i in range(n):
        for c in range(nc):
            d = 0
            for k in range(D):
                d = max(d, abs(points[i, k] - cen[c, k]))
            if d <= rad[c]:
                group[i] = c
                break
        else:
            if nc == cap:
                cap *= 2
                centres = np.concatenate([centres, np.empty_like(centres)])
                radius = np.concatenate([radius, np.empty_like(radius)])
                cen, rad = centres, radius
            scale = 0
            for k in range(D):
                cen[nc, k] = points[i, k]
                scale = max(scale, abs(points[i, k]))
            rad[nc] = tol * (1 + scale)
            group[i] = nc
            nc += 1
    sums = np.zeros((nc, D), dtype=dtype)
    counts = np.zeros(nc, dtype=np.int64)
    cdef point_t[:, ::1] S = sums
    cdef int64_t[::1] m = counts
    for i in range(n):
        c = group[i]
        if m[c] < average:
            m[c] += 1
            for k in range(D):
                S[c, k] = S[c, k] + points[i, k]
    return idx, sums, counts
