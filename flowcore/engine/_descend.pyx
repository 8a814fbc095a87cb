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
from flowcore.engine._loss cimport Loss
from flowcore.engine._abi cimport (FC_OK, FC_ESCAPED, FC_NONFINITE, FC_INTERRUPTED, fc_interrupt_pending,
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
    P.cap > 0; at g = 0 the cap (or 0). p = 1 and 2 without pow (as maps.h)."""
    cdef double r, h
    if gn > 0:
        r = hg / gn
        h = 2.0 / (r if P.power == 1 else r * r if P.power == 2 else pow(r, P.power))
    else:
        h = P.cap if P.cap > 0 else 0.0
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


cdef struct Work:
    double *cur         # [m, D] θ_n
    double *vel         # [m, D] θ_n − θ_{n−1}
    double *y           # [m, D] where the gradient is taken
    double *g           # [m, D]
    double *H           # [m, D, D] (the DAL methods)
    double *live        # [m, D] 1 while the row runs, 0 once it stopped
    double *lr_elem     # [m, D] each row's learning rate, per coordinate
    double *Hg          # [D] one row's H g
    double *path0       # [m] a cycle's step length when first seen
    double *ring        # [m, keep, D] the iterates kept: X itself (pmax = 0) or the last pmax + 1
    int *streak         # [m] steps the candidate period has held
    int *candidate      # [m]
    int *slot           # [pmax + 1] slot[p]: where θ_{k+1−p} sits in the ring


cdef int _work_alloc(const Params *P, int64_t m, double *X, Work *W) noexcept nogil:
    """One block's buffers (two allocations); with pmax > 0 the ring starts as X's starts."""
    cdef int64_t D = P.D, i, a, ring = 0 if P.pmax == 0 else m * P.keep * D
    cdef int64_t hess = m * D * D if P.method >= DAL else 0       # only the DAL methods read H
    W.cur = <double*> malloc((m * D * 6 + hess + D + m + ring) * sizeof(double))
    W.streak = <int*> malloc((2 * m + P.pmax + 1) * sizeof(int))
    if W.cur == NULL or W.streak == NULL:
        free(W.cur)
        free(W.streak)
        return -2
    W.vel, W.y, W.g, W.H = W.cur + m * D, W.cur + 2 * m * D, W.cur + 3 * m * D, W.cur + 4 * m * D
    W.live = W.H + hess
    W.lr_elem = W.live + m * D
    W.Hg = W.lr_elem + m * D
    W.path0 = W.Hg + D
    W.ring = X if P.pmax == 0 else W.path0 + m
    W.candidate, W.slot = W.streak + m, W.streak + 2 * m
    if P.pmax > 0:
        for i in range(m):
            for a in range(D):
                W.ring[i * P.keep * D + a] = X[i * D + a]
    return 0


cdef void _work_free(Work *W) noexcept nogil:
    free(W.cur)
    free(W.streak)


cdef void _start_rows(const Params *P, Work *W, int64_t m, const double *lr_rows, int *status,
                      int *nsteps, int *period) noexcept nogil:
    cdef int64_t i
    cdef int a, D = P.D
    for i in range(m):
        status[i], nsteps[i], period[i], W.streak[i], W.candidate[i], W.path0[i] = FC_OK, 0, 0, 0, 0, 0
        for a in range(D):
            W.cur[i * D + a] = W.ring[i * P.keep * D + a]
            W.vel[i * D + a] = 0
            if not isfinite(W.cur[i * D + a]):
                status[i] = FC_NONFINITE
        for a in range(D):
            W.live[i * D + a] = status[i] == FC_OK
            W.lr_elem[i * D + a] = lr_rows[i]


cdef inline bint _running(int status, int period) noexcept nogil:
    return status == FC_OK and period == 0


cdef void _plain_update(const Params *P, Work *W, int64_t m) noexcept nogil:
    """gd, heavy ball, Nesterov on the whole block, branch-free (stopped rows: live = 0)."""
    cdef int64_t i
    cdef double r
    cdef double *cur = W.cur        # locals, not W's fields: see _hessian_update
    cdef double *vel = W.vel
    cdef const double *live = W.live
    cdef const double *lr = W.lr_elem
    cdef const double *g = W.g
    for i in range(m * P.D):
        r = live[i] * (P.beta * vel[i] - lr[i] * g[i])
        vel[i] = r
        cur[i] += r


cdef void _lookahead(const Params *P, Work *W, int64_t m) noexcept nogil:
    """Nesterov's y = θ + β v, where its gradient is taken."""
    cdef int64_t i
    cdef double *y = W.y
    cdef const double *cur = W.cur
    cdef const double *vel = W.vel
    for i in range(m * P.D):
        y[i] = cur[i] + P.beta * vel[i]


cdef inline double _dal_update(const Params *P, const double *g, const double *Hg, double *vel, double *cur,
                               double *rates) noexcept nogil:
    """One row of the DAL methods from g and H g: h = DAL-p's rate from ‖H ĝ‖ (one rate) or
    |(H ĝ)_a| (one a coordinate, dal_per_param), θ⁺ = θ − h g (+ β v with momentum); stores the
    rates used (rates: this row's step, NULL for none). Returns ‖θ⁺‖². The dense loop (H g from
    the row's Hessian) and the matrix-free one (H g by a Hessian–vector product, dal_update)."""
    cdef int a, D = P.D
    cdef bint per_param = P.method == DAL_PER_PARAM, momentum = P.method == DAL_MOMENTUM
    cdef double gn = 0, hg = 0, h = 0, r, norm2 = 0
    for a in range(D):
        gn += g[a] * g[a]
        hg += Hg[a] * Hg[a]
    gn = sqrt(gn)
    if not per_param:
        h = _dal_rate(P, sqrt(hg), gn)
        if rates != NULL:
            rates[0] = h
    for a in range(D):
        if per_param:
            h = _dal_rate(P, fabs(Hg[a]), gn)
            if rates != NULL:
                rates[a] = h
        r = -h * g[a]
        if momentum:
            r = r + P.beta * vel[a]
        vel[a] = r
        cur[a] += r
        norm2 += cur[a] * cur[a]
    return norm2


cdef inline double _hessian_update(const Params *P, Work *W, int64_t i, double *rates) noexcept nogil:
    """_dal_update for row i with H g from its Hessian."""
    cdef int a, b, D = P.D
    # the row's pointers in locals: Python builds with -fno-strict-aliasing, so a store through
    # a double* would reload every W field read in the loop
    cdef const double *g = W.g + i * D
    cdef const double *H = W.H + i * D * D
    cdef double *Hg = W.Hg
    cdef double s
    for a in range(D):
        s = 0
        for b in range(D):
            s += H[a * D + b] * g[b]
        Hg[a] = s
    return _dal_update(P, g, Hg, W.vel + i * D, W.cur + i * D, rates)


def dal_update(str method, double power, double cap, double beta, const double[::1] g, const double[::1] Hg,
               double[::1] vel, double[::1] cur, double[::1] rates):
    """One step of a DAL method (``method``: 'dal', 'dal_momentum' or 'dal_per_param') from g and
    H g, in place on cur and vel; the rate(s) into ``rates`` ([1] or [D]). Returns ‖θ⁺‖². The
    same code as the generic loop's step, for the matrix-free DAL of a network (fc.descend)."""
    cdef Params P
    P.method, P.D, P.power, P.cap, P.beta = METHODS[method], g.shape[0], power, cap, beta
    if P.method < DAL or Hg.shape[0] != P.D or vel.shape[0] != P.D or cur.shape[0] != P.D \
            or rates.shape[0] != (P.D if P.method == DAL_PER_PARAM else 1):
        raise ValueError("dal_update: a DAL method and g, Hg, vel, cur of one length D (rates: D per parameter, else 1)")
    return _dal_update(&P, &g[0], &Hg[0], &vel[0], &cur[0], &rates[0])


cdef int _settled(const Params *P, Work *W, int64_t i, int k) noexcept nogil:
    """Row i's recurrence bookkeeping after step k: its period once a recurrence has held
    `confirm` steps (and a cycle has not shrunk meanwhile: a damped oscillation), else 0."""
    cdef const double *ring = W.ring + i * P.keep * P.D
    cdef const double *cur = W.cur + i * P.D
    cdef double scale
    cdef int p = _period(P, ring, W.slot, cur, k, W.candidate[i]), d
    W.streak[i] = W.streak[i] + 1 if p > 0 and p == W.candidate[i] else (p > 0)
    W.candidate[i] = p
    if W.streak[i] == 1 and p > 1:
        W.path0[i] = _path(P, ring, W.slot, cur, p, &scale)
    if W.streak[i] < P.confirm:
        return 0
    d = _smallest_period(P, ring, W.slot, cur, p)
    if d > 1 and _path(P, ring, W.slot, cur, p, &scale) < W.path0[i] - 2 * p * P.tol * (1 + scale):
        W.streak[i], W.candidate[i] = 0, 0
        return 0
    return d


cdef inline void _advance_row(const Params *P, Work *W, int64_t i, int k, double *rates, int *status,
                              int *nsteps, int *period) noexcept nogil:
    """Row i after step k's update: the DAL methods' own update, the stop tests, the rest test,
    the iterate stored; a stopped row's live flags cleared."""
    cdef int a, D = P.D
    cdef double *cur = W.cur + i * D       # locals, not W's fields: see _hessian_update
    cdef double *live = W.live + i * D
    cdef double *keep = W.ring + (i * P.keep + W.slot[0]) * D
    cdef double norm2 = 0
    if P.method >= DAL:
        norm2 = _hessian_update(P, W, i, rates)
    else:
        for a in range(D):
            norm2 += cur[a] * cur[a]
    nsteps[0] = k + 1
    if not isfinite(norm2):
        status[0] = FC_NONFINITE
    elif norm2 > P.radius * P.radius:
        status[0] = FC_ESCAPED
    elif P.pmax > 0:
        period[0] = _settled(P, W, i, k)
    for a in range(D):
        keep[a] = cur[a]
    if not _running(status[0], period[0]):
        for a in range(D):
            live[a] = 0


cdef int _block(Loss loss, const Params *P, int64_t m, const double *lr_rows, double *X, double *rates,
                int *status, int *nsteps, int *period) noexcept nogil:
    """Run m trajectories. pmax = 0: X [m, steps+1, D] holds θ0 at slot 0 on entry and every
    iterate on exit. pmax > 0: X [m, D] holds θ0 on entry and, on exit, the final iterate, or
    for a trajectory that recurred with period p, the representative of its p-cycle. rates
    may be NULL."""
    cdef Work W
    cdef int D = P.D, k, a, p, rc = 0
    cdef int64_t i, rate_size = D if P.method == DAL_PER_PARAM else 1     # rates a step
    cdef bint need_H = P.method >= DAL
    if _work_alloc(P, m, X, &W) != 0:
        return -2
    _start_rows(P, &W, m, lr_rows, status, nsteps, period)
    for k in range(P.steps):
        a = 0
        for i in range(m):
            a += _running(status[i], period[i])
        if a == 0:
            break
        if fc_interrupt_pending():
            for i in range(m):
                if _running(status[i], period[i]):
                    status[i] = FC_INTERRUPTED
            break
        for p in range(min(P.pmax, k + 1) + 1):
            W.slot[p] = (k + 1 - p) % P.keep
        if P.method == NESTEROV:
            _lookahead(P, &W, m)
        rc = loss.c.eval_d(loss.c.ctx, m, W.y if P.method == NESTEROV else W.cur, NULL, NULL, W.g,
                           W.H if need_H else NULL, NULL)
        if rc != 0:
            break
        if not need_H:
            _plain_update(P, &W, m)
        for i in range(m):
            if _running(status[i], period[i]):
                _advance_row(P, &W, i, k, NULL if rates == NULL else rates + (i * P.steps + k) * rate_size,
                             &status[i], &nsteps[i], &period[i])
    if P.pmax > 0:
        for i in range(m):
            _representative(P, W.ring + i * P.keep * D, nsteps[i], max(period[i], 1), X + i * D)
    _work_free(&W)
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
    cdef int rc = 0, rcb, nomem = 0
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
            nomem += rcb == -2
    finally:
        interrupted = give_sigint(taken)
    if rc != 0:
        err, loss._error = loss._error, None
        if err is not None:
            raise err
        if nomem:
            raise MemoryError(f"descend could not allocate its work arrays for D = {D}"
                              + (" (the DAL methods hold a D×D Hessian per trajectory)" if P.method >= DAL else ""))
        raise RuntimeError(f"loss {loss.name!r} failed during descend")
    return X, rates, status, nsteps, period, interrupted


ctypedef fused point_t:
    double
    double complex


cdef enum:
    SEED_ROWS = 4096    # rows grouped serially before the parallel pass (their centres are C₀)


cdef inline int64_t _join(const point_t *row, const point_t *cen, const double *rad, int64_t D,
                          int64_t lo, int64_t hi) noexcept nogil:
    """The first centre c in [lo, hi) with max_k |row_k − cen_ck| ≤ rad_c, or −1."""
    cdef int64_t c, k
    cdef double d
    for c in range(lo, hi):
        d = 0
        for k in range(D):
            d = max(d, abs(row[k] - cen[c * D + k]))
        if d <= rad[c]:
            return c
    return -1


cdef inline bint _finite_row(const point_t *row, int64_t D) noexcept nogil:
    cdef int64_t k
    for k in range(D):
        if not abs(row[k]) < INFINITY:        # NaN fails the comparison too
            return False
    return True


ctypedef fused index_t:
    int
    int64_t


def _group_rows(state, point_t[:, ::1] points, index_t[::1] group, int threads=1):
    """Greedy grouping of rows fed in order, a batch at a time: each row joins the first group (in
    order of creation) whose centre (its first row) c has max_k |row_k − c_k| ≤ tol (1 +
    max_k |c_k|), else starts a group. The same groups as one serial pass over all the rows, and
    as repeated sweeps "the first unassigned row is a centre, its group all unassigned rows near
    it".

    ``state`` (optim.Grouping) holds the groups so far: centres [cap, D], radius, size, sums
    (of each group's first ``average`` members, in row order), counts, first (the row, counted
    over all batches, that made each group), nc, rows, tol, average; arrays are grown here.
    A batch: while there are no groups, the first SEED_ROWS rows serially; every later row
    against the groups C₀ made before it, in parallel — a row that meets one of C₀ joins the
    first it meets, as it would serially, since every later group was made after all of C₀; then
    from the first row that met none, in order, those rows against the groups made since.
    Writes each row's group into ``group`` (int32 where the rows fit: half the fresh memory of a
    basin map's labels); returns False when a row is not finite (the state is then spoilt)."""
    cdef int64_t n = points.shape[0], D = points.shape[1], i, c, k, t, lo, hi
    cdef int64_t nc = state.nc, nc0 = 0, cap = len(state.radius), row0 = state.rows, average = state.average
    cdef int64_t seed = min(n, <int64_t>SEED_ROWS) if nc == 0 else 0, bad = 0, full = 0, T = max(1, threads)
    cdef double tol = state.tol, scale
    cdef point_t[:, ::1] cen = state.centres
    cdef double[::1] rad = state.radius
    cdef int64_t[::1] size = state.size
    cdef int64_t[::1] made = state.first
    cdef int64_t[:, ::1] J
    cdef int64_t[::1] miss
    i = 0
    while i < n:
        if i == seed:
            # the rows after the seed against C₀, T contiguous slices in parallel, counting per
            # slice how many joined each group (padded by a cache line: the threads write apart)
            # and the first row that met none
            nc0 = nc
            joined = np.zeros((T, nc0 + 8), np.int64)
            J = joined
            misses = np.full(T * 8, n, np.int64)
            miss = misses
            for t in prange(T, nogil=True, num_threads=T, schedule="static"):
                lo = seed + (n - seed) * t // T
                hi = seed + (n - seed) * (t + 1) // T
                for k in range(lo, hi):
                    if not _finite_row(&points[k, 0], D):
                        bad += 1
                        group[k] = -1
                    else:
                        c = _join(&points[k, 0], &cen[0, 0], &rad[0], D, 0, nc0)
                        group[k] = <index_t>c
                        if c >= 0:
                            J[t, c] += 1
                        elif miss[8 * t] == n:
                            miss[8 * t] = k
            if bad:
                return False
            state.size[:nc0] += joined[:, :nc0].sum(axis=0)
            i = misses.min()      # the rows before it met a group of C₀: no serial pass over them
            if i == n:
                break
        if i < seed:
            if not _finite_row(&points[i, 0], D):
                return False
            c = _join(&points[i, 0], &cen[0, 0], &rad[0], D, 0, nc)
        elif group[i] < 0:        # met none of C₀: the groups made since, in order
            c = _join(&points[i, 0], &cen[0, 0], &rad[0], D, nc0, nc)
        else:
            i += 1
            continue
        if c < 0:
            if nc == cap:
                cap *= 2
                for name in ("centres", "radius", "size", "sums", "counts", "first"):
                    old = getattr(state, name)
                    setattr(state, name, np.concatenate([old, np.zeros_like(old)]))
                cen, rad, size, made = state.centres, state.radius, state.size, state.first
            scale = 0
            for k in range(D):
                cen[nc, k] = points[i, k]
                scale = max(scale, abs(points[i, k]))
            rad[nc] = tol * (1 + scale)
            made[nc] = row0 + i
            c = nc
            nc += 1
        group[i] = <index_t>c
        size[c] += 1
        i += 1
    # each group's first `average` members, in row order: stop once every group has them or all
    # of its rows so far
    cdef point_t[:, ::1] S = state.sums
    cdef int64_t[::1] m = state.counts
    for c in range(nc):
        full += m[c] == min(average, size[c])
    for i in range(n):
        if full == nc:
            break
        c = group[i]
        if m[c] < average:
            m[c] += 1
            for k in range(D):
                S[c, k] = S[c, k] + points[i, k]
            full += m[c] == min(average, size[c])
    state.nc, state.rows = nc, row0 + n
    return True


def _relabel(index_t[::1] group, const int64_t[::1] table, int threads=1):
    """group[i] = table[group[i]] in place where group[i] ≥ 0, in parallel (a basin map's groups
    to their labels; the negative labels of starts not at rest stay)."""
    cdef int64_t i, n = group.shape[0]
    for i in prange(n, nogil=True, num_threads=max(1, threads), schedule="static"):
        if group[i] >= 0:
            group[i] = <index_t>table[group[i]]


def _outer_rows(const double[:, ::1] a, const double[:, ::1] b, Py_ssize_t lo, double[:, ::1] out,
                int threads=1):
    """Rows lo, lo + 1, … of a grid of starts flattened row-major: out[r, k] = a[j, k] + b[i, k]
    with (j, i) = divmod(lo + r, len(b)) (a plane's rows a, its columns b; the same sums as
    numpy's add.outer, coordinate by coordinate), rows in parallel. A chunk of a basin map's
    starts, or (lo = 0) the whole grid."""
    cdef Py_ssize_t r, i, j, k, nx = b.shape[0], D = a.shape[1]
    for r in prange(out.shape[0], nogil=True, num_threads=max(1, threads), schedule="static"):
        j = (lo + r) // nx
        i = lo + r - j * nx
        for k in range(D):
            out[r, k] = a[j, k] + b[i, k]


