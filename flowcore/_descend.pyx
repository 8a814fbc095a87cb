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
    double lr, beta, power, cap, radius


cdef int _block(Loss loss, const Params *P, int64_t m, double *X, double *rates, int *status,
                int *nsteps) noexcept nogil:
    """Run m trajectories; X [m, steps+1, D] holds θ0 at step 0 on entry."""
    cdef int D = P.D, S = P.steps, k, a, b, rc = 0
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
    cdef double hg, gn, r, h, s, step_norm
    for i in range(m):
        status[i], nsteps[i] = FC_OK, 0
        for a in range(D):
            cur[i * D + a] = X[i * (S + 1) * D + a]
            vel[i * D + a] = 0
            if not isfinite(cur[i * D + a]):
                status[i] = FC_NONFINITE
    for k in range(S):
        for i in range(m * D):
            y[i] = cur[i] + P.beta * vel[i] if P.method == NESTEROV else cur[i]
        rc = loss.c.eval_d(loss.c.ctx, m, y, NULL, NULL, g, H if need_H else NULL, NULL)
        if rc != 0:
            break
        for i in range(m):
            if status[i] != FC_OK:
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
                rates[i * S + k] = h
            step_norm = 0
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
                    rates[(i * S + k) * D + a] = h
                r = -h * g[i * D + a]
                if momentum:
                    r = r + P.beta * vel[i * D + a]
                vel[i * D + a] = r
                cur[i * D + a] += r
                X[(i * (S + 1) + k + 1) * D + a] = cur[i * D + a]
                step_norm += cur[i * D + a] * cur[i * D + a]
            nsteps[i] = k + 1
            if not isfinite(step_norm):
                status[i] = FC_NONFINITE
            elif sqrt(step_norm) > P.radius:
                status[i] = FC_ESCAPED
    free(buf)
    return rc


def _descend(Loss loss, double[:, ::1] theta0, int steps, str method, double lr, double beta,
             double power, double cap, double radius, int threads):
    cdef Params P
    P.method, P.D, P.steps = METHODS[method], loss.dim, steps
    P.lr, P.beta, P.power, P.cap, P.radius = lr, beta, power, cap, radius
    cdef int64_t N = theta0.shape[0], nb = (N + BLOCK - 1) // BLOCK, blk, i0, m
    cdef int D = loss.dim
    X = np.full((N, steps + 1, D), np.nan)
    X[:, 0] = theta0
    per_param = P.method == DAL_PER_PARAM
    shape = (int(N), steps) + ((D,) if per_param else ())
    rates = np.full(shape, np.nan if P.method >= DAL else lr)
    status = np.zeros(N, dtype=np.intc)
    nsteps = np.zeros(N, dtype=np.intc)
    cdef double[:, :, ::1] Xv = X
    cdef double *pr = <double*> cnp.PyArray_DATA(rates)
    cdef int[::1] st = status
    cdef int[::1] ns = nsteps
    cdef int rc = 0, rcb
    cdef int64_t rstride = steps * (D if per_param else 1)
    if N == 0 or steps == 0:
        return X, rates, status, nsteps
    loss._error = None
    for blk in prange(nb, nogil=True, num_threads=threads, schedule="dynamic"):
        i0 = blk * BLOCK
        m = N - i0 if N - i0 < BLOCK else BLOCK
        rcb = _block(loss, &P, m, &Xv[i0, 0, 0], pr + i0 * rstride, &st[i0], &ns[i0])
        rc += rcb != 0
    if rc != 0:
        err, loss._error = loss._error, None
        if err is not None:
            raise err
        raise RuntimeError(f"loss {loss.name!r} failed during descend")
    return X, rates, status, nsteps
