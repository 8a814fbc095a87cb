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
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t
from flowcore._loss cimport Loss
from flowcore._abi cimport FC_OK, FC_ESCAPED, FC_NONFINITE

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
    double lr, beta, power, cap, radius, tol


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


cdef int _block(Loss loss, const Params *P, int64_t m, double *X, double *rates, int *status,
                int *nsteps, int *period) noexcept nogil:
    """Run m trajectories; X [m, keep, D] holds θ0 at slot 0 on entry and θ_j at slot j % keep
    on exit. rates may be NULL. A trajectory with a recurrence (period > 0) stops there."""
    cdef int D = P.D, S = P.steps, K = P.keep, k, a, b, p, rc = 0, active
    cdef int64_t i
    cdef bint need_H = P.method >= DAL, per_param = P.method == DAL_PER_PARAM
    cdef bint momentum = P.method == HEAVY_BALL or P.method == NESTEROV or P.method == DAL_MOMENTUM
    cdef double *buf = <double*> malloc(m * D * (4 + D) * sizeof(double))
    if buf == NULL:
        return -2
    cdef double *cur = buf                      # θ_n
    cdef double *vel = buf + m * D              # θ_n − θ_{n−1}
    cdef double *y = buf + 2 * m * D            # where the gradient is taken
    cdef double *g = buf + 3 * m * D
    cdef double *H = buf + 4 * m * D
    cdef int *streak = <int*> malloc((2 * m + P.pmax + 1) * sizeof(int))
    if streak == NULL:
        free(buf)
        return -2
    cdef int *candidate = streak + m
    cdef int *slot = streak + 2 * m             # slot[p]: where θ_{k+1−p} sits in the ring
    cdef double radius2 = P.radius * P.radius
    cdef double hg, gn, r, h, s, norm2
    for i in range(m):
        status[i], nsteps[i], period[i], streak[i], candidate[i] = FC_OK, 0, 0, 0, 0
        for a in range(D):
            cur[i * D + a] = X[i * K * D + a]
            vel[i * D + a] = 0
            if not isfinite(cur[i * D + a]):
                status[i] = FC_NONFINITE
    for k in range(S):
        active = 0
        for i in range(m):
            active += status[i] == FC_OK and period[i] == 0
        if active == 0:
            break
        for p in range(min(P.pmax, k + 1) + 1):
            slot[p] = (k + 1 - p) % K
        if P.pmax == 0:
            slot[0] = (k + 1) % K
        if P.method == NESTEROV:
            for i in range(m * D):
                y[i] = cur[i] + P.beta * vel[i]
        rc = loss.c.eval_d(loss.c.ctx, m, y if P.method == NESTEROV else cur, NULL, NULL, g,
                           H if need_H else NULL, NULL)
        if rc != 0:
            break
        for i in range(m):
            if status[i] != FC_OK or period[i] != 0:
                continue
            h = P.lr
            if need_H and not per_param:      # DAL-p: h = 2 / ‖H ĝ‖^p
                gn, hg = 0, 0
                for a in range(D):
                    gn += g[i * D + a] * g[i * D + a]
                    s = 0
                    for b in range(D):
                        s += H[(i * D + a) * D + b] * g[i * D + b]
                    hg += s * s
                gn, hg = sqrt(gn), sqrt(hg)
                h = 2.0 / pow(hg / gn, P.power) if gn > 0 else (P.cap if P.cap > 0 else 0.0)
                if P.cap > 0 and h > P.cap:
                    h = P.cap
                if rates != NULL:
                    rates[i * S + k] = h
            norm2 = 0
            if per_param:
                gn = 0
                for b in range(D):
                    gn += g[i * D + b] * g[i * D + b]
            for a in range(D):
                if per_param:                  # h_a = 2 / |(H ĝ)_a|^p
                    s = 0
                    for b in range(D):
                        s += H[(i * D + a) * D + b] * g[i * D + b]
                    h = 2.0 / pow(fabs(s) / sqrt(gn), P.power) if gn > 0 else (P.cap if P.cap > 0 else 0.0)
                    if P.cap > 0 and h > P.cap:
                        h = P.cap
                    if rates != NULL:
                        rates[(i * S + k) * D + a] = h
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
                p = _period(P, X + i * K * D, slot, cur + i * D, k, candidate[i])
                streak[i] = streak[i] + 1 if p > 0 and p == candidate[i] else (p > 0)
                candidate[i] = p
                if streak[i] >= P.confirm:
                    period[i] = p
            for a in range(D):
                X[(i * K + slot[0]) * D + a] = cur[i * D + a]
    free(buf)
    free(streak)
    return rc


def _descend(Loss loss, double[:, ::1] theta0, int steps, str method, double lr, double beta,
             double power, double cap, double radius, int threads, int pmax=0, double tol=0,
             int confirm=1):
    """pmax = 0: every iterate [N, steps+1, D] and the rates. pmax > 0: iterate until the first
    recurrence of period ≤ pmax (held `confirm` steps); keep the last pmax+1 iterates [N, pmax+1, D] (oldest first)."""
    cdef Params P
    P.method, P.D, P.steps = METHODS[method], loss.dim, steps
    P.lr, P.beta, P.power, P.cap, P.radius = lr, beta, power, cap, radius
    P.pmax, P.tol, P.confirm = pmax, tol, confirm
    P.keep = steps + 1 if pmax == 0 else pmax + 1
    cdef int64_t N = theta0.shape[0], nb = (N + BLOCK - 1) // BLOCK, blk, i0, m
    cdef int D = loss.dim
    X = np.full((N, P.keep, D), np.nan)
    X[:, 0] = theta0
    per_param = P.method == DAL_PER_PARAM
    rates = None
    if pmax == 0:
        rates = np.full((int(N), steps) + ((D,) if per_param else ()), np.nan if P.method >= DAL else lr)
    status = np.zeros(N, dtype=np.intc)
    nsteps = np.zeros(N, dtype=np.intc)
    period = np.zeros(N, dtype=np.intc)
    cdef double[:, :, ::1] Xv = X
    cdef double *pr = NULL if rates is None else <double*> cnp.PyArray_DATA(rates)
    cdef int[::1] st = status
    cdef int[::1] ns = nsteps
    cdef int[::1] per = period
    cdef int rc = 0, rcb
    cdef int64_t rstride = steps * (D if per_param else 1)
    if N == 0 or steps == 0:
        return X, rates, status, nsteps, period
    loss._error = None
    for blk in prange(nb, nogil=True, num_threads=threads, schedule="dynamic"):
        i0 = blk * BLOCK
        m = N - i0 if N - i0 < BLOCK else BLOCK
        rcb = _block(loss, &P, m, &Xv[i0, 0, 0], NULL if pr == NULL else pr + i0 * rstride,
                     &st[i0], &ns[i0], &per[i0])
        rc += rcb != 0
    if rc != 0:
        err, loss._error = loss._error, None
        if err is not None:
            raise err
        raise RuntimeError(f"loss {loss.name!r} failed during descend")
    if pmax > 0:     # unroll each ring so that the newest iterate is last
        order = (nsteps[:, None] + 1 + np.arange(P.keep)[None, :]) % P.keep
        X = np.take_along_axis(X, order[:, :, None], axis=1)
    return X, rates, status, nsteps, period
