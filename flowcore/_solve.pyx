# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""One explicit Runge–Kutta loop for every tableau, batched with per-trajectory control.

Trajectories go in blocks of BLOCK. Each keeps its own t, step size, error history,
status, counters and (for the tracked PF) branch state; per attempted step, the
block's active rows are gathered and every stage is one field call for all of them.
Blocks run in parallel (OpenMP). A trajectory's arithmetic never touches another's,
so results are bitwise independent of the thread count and of the batch.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport sqrt, pow, fabs, isfinite, INFINITY, fmin, fmax
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy
from libc.stdint cimport int64_t, uintptr_t
from flowcore._field cimport Field
from flowcore._abi cimport (FC_OK, FC_ESCAPED, FC_MAX_STEPS, FC_STEP_UNDERFLOW, FC_NONFINITE,
                            FC_SINGULAR, FC_INTERRUPTED, fc_interrupt_pending, fc_sigint_seen,
                            take_sigint, give_sigint)

cnp.import_array()

from flowcore._scalar cimport scalar, cabs, creal, cimag, _finite, _abs

cdef enum:
    BLOCK = 32
    RUNNING = -1

# the PI step-size controller (Hairer, Nørsett & Wanner, Solving ODEs I, II.4)
cdef double SAFETY = 0.9, FACMIN = 0.2, FACMAX = 10.0, EPS = 2.220446049250313e-16
cdef double ERR_OLD_START = 1e-4      # the previous error assumed before the first step
cdef double SHRINK_ON_FAULT = 0.25    # a rejected step with a non-finite value retries at this fraction
cdef double ERR3_WEIGHT = 0.01        # DOP853's weight of the 3rd-order estimate
# Hairer's initial step: h0 = 0.01 d0/d1, then min(100 h0, (0.01/max(d1, d2))^(1/(q+1)))
cdef double H0_FRACTION = 0.01, H0_GROWTH = 100.0, H0_FALLBACK = 1e-6, H0_NEGLIGIBLE = 1e-5


cdef struct Stepper:              # a tableau with the controls of one integration
    int stages            # s
    const double *A       # [s, s]
    const double *b       # [s]
    const double *e       # [s + 1] or NULL (fixed step)
    const double *e3      # [s + 1] or NULL (DOP853's 3rd-order part)
    const double *P       # [s + 1, NP] dense output y(t + xh) = y + h Σ_j K_j Σ_q P[j,q] x^(q+1), or NULL
    int NP
    double alpha, beta    # PI controller exponents
    double dt, rtol, atol, radius
    int64_t max_steps
    int order


cdef int _feval(Field f, int64_t n, scalar *x, double complex *state, scalar *out,
                int *status) noexcept nogil:
    if scalar is double:
        return f.eval_d(n, x, out, status)
    else:
        return f.eval_z(n, x, state, out, status)


cdef int _run_block(Field f, const Stepper *M, int64_t m, int D, const scalar *y0, double t0,
                    const double *tout, int nout, scalar *Y, int *status, int64_t *nfev,
                    int64_t *nsteps, int64_t *nreject) noexcept nogil:
    """Integrate m trajectories from y0 [m, D] at t0 through the output times tout[nout];
    Y [m, nout, D] receives y at each output time (left untouched after a stop)."""
    cdef int stages = M.stages, NS = f.nstate, s, j, a, rc = 0
    cdef bint adaptive = M.e != NULL, tracked = NS > 0 and scalar is not double
    cdef int64_t i, r, nact, nacc
    cdef size_t zs = sizeof(scalar)
    # per-trajectory arrays
    cdef scalar *y = <scalar*> malloc(m * D * zs)
    cdef scalar *K = <scalar*> malloc((stages + 1) * m * D * zs)      # stages; K[s] = f(y⁺) (FSAL)
    cdef scalar *ynew = <scalar*> malloc(m * D * zs)
    cdef double *t = <double*> malloc(m * sizeof(double))
    cdef double *h_next = <double*> malloc(m * sizeof(double))        # step to try next
    cdef double *h_try = <double*> malloc(m * sizeof(double))       # step being tried
    cdef double *errold = <double*> malloc(m * sizeof(double))
    cdef int *k_out = <int*> malloc(m * sizeof(int))
    cdef int *fault = <int*> malloc(m * sizeof(int))
    cdef int *rejected = <int*> malloc(m * sizeof(int))
    cdef double complex *state = <double complex*> malloc((m * NS + 1) * sizeof(double complex))
    # gathered (contiguous) rows for the field
    cdef int64_t *act = <int64_t*> malloc(m * sizeof(int64_t))
    cdef scalar *x_rows = <scalar*> malloc(m * D * zs)
    cdef scalar *out_rows = <scalar*> malloc(m * D * zs)
    cdef double complex *state_rows = <double complex*> malloc((m * NS + 1) * sizeof(double complex))
    cdef int *st = <int*> malloc(m * sizeof(int))
    if (y == NULL or K == NULL or ynew == NULL or t == NULL or h_next == NULL or h_try == NULL
            or errold == NULL or k_out == NULL or fault == NULL or rejected == NULL or state == NULL
            or act == NULL or x_rows == NULL or out_rows == NULL or state_rows == NULL or st == NULL):
        rc = -2
    cdef double d0, d1, d2, sc, err, err5_sq, err3_sq, fac, tt, tgt
    cdef scalar acc, v
    cdef double complex *sp = NULL
    if rc == 0:
        memcpy(y, y0, m * D * zs)
        nact = 0
        for i in range(m):
            t[i], k_out[i], errold[i], rejected[i], fault[i] = t0, 0, ERR_OLD_START, 0, FC_OK
            nfev[i], nsteps[i], nreject[i] = 0, 0, 0
            status[i] = RUNNING
            for a in range(D):
                if not _finite(y[i * D + a]):
                    status[i] = FC_NONFINITE
            if status[i] == RUNNING:
                act[nact] = i
                nact += 1
        # initial branch state, then f(y0) for the active rows
        rc = _gather(f, act, nact, D, NS, y, state, x_rows, state_rows)
        if rc == 0 and tracked:
            rc = f.branch(nact, <double complex*> x_rows, state_rows, True, st)
            _scatter_state(act, nact, NS, state_rows, state, st, status)
        if rc == 0:
            rc = _eval_rows(f, act, nact, D, NS, y, state, x_rows, out_rows, state_rows, st, K, nfev, fault)
            for r in range(nact):
                i = act[r]
                if fault[i] != FC_OK:
                    status[i] = fault[i]
        # initial step: fixed dt, or Hairer's selection (Solving ODEs I, II.4)
        nact = _compact(act, nact, status)
        for r in range(nact):
            i = act[r]
            tgt = tout[nout - 1] - t0
            if not adaptive or M.dt > 0:       # fixed step, or the user's first step
                h_next[i] = M.dt if not adaptive else fmin(M.dt, tgt)
                continue
            d0, d1 = 0, 0
            for a in range(D):
                sc = M.atol + M.rtol * _abs(y[i * D + a])
                d0 += (_abs(y[i * D + a]) / sc) ** 2
                d1 += (_abs(K[i * D + a]) / sc) ** 2
            d0, d1 = sqrt(d0 / D), sqrt(d1 / D)
            h_next[i] = H0_FALLBACK if (d0 < H0_NEGLIGIBLE or d1 < H0_NEGLIGIBLE) else H0_FRACTION * d0 / d1
            h_next[i] = fmin(h_next[i], tgt)
            for a in range(D):
                ynew[i * D + a] = y[i * D + a] + h_next[i] * K[i * D + a]
        if rc == 0 and adaptive and M.dt == 0:
            rc = _eval_rows(f, act, nact, D, NS, ynew, state, x_rows, out_rows, state_rows, st, K + stages * m * D, nfev, fault)
            for r in range(nact):
                i = act[r]
                d1, d2 = 0, 0
                for a in range(D):
                    sc = M.atol + M.rtol * _abs(y[i * D + a])
                    d1 += (_abs(K[i * D + a]) / sc) ** 2
                    d2 += (_abs(K[stages * m * D + i * D + a] - K[i * D + a]) / sc) ** 2
                d1, d2 = sqrt(d1 / D), sqrt(d2 / D) / h_next[i]
                if d1 <= 1e-15 and d2 <= 1e-15:
                    h_next[i] = fmax(H0_FALLBACK, h_next[i] * 1e-3)
                else:
                    h_next[i] = fmin(H0_GROWTH * h_next[i], pow(H0_FRACTION / fmax(d1, d2), 1.0 / (M.order + 1)))
                if not isfinite(h_next[i]) or fault[i] != FC_OK:
                    h_next[i] = H0_FALLBACK * fmax(1.0, tout[nout - 1] - t0)
    # ------------------------------------------------------------------ main loop
    while rc == 0 and nact > 0:
        if fc_interrupt_pending():
            for r in range(nact):
                status[act[r]] = FC_INTERRUPTED
            break
        for r in range(nact):
            i = act[r]
            # land exactly on the next output (or, with dense output, on the end only);
            # a remainder within rounding of a full step joins it
            tgt = tout[nout - 1] if M.P != NULL else tout[k_out[i]]
            h_try[i] = h_next[i] if t[i] + h_next[i] * (1 + 1e-9) < tgt else tgt - t[i]
            fault[i] = FC_OK
        for s in range(1, stages):
            for r in range(nact):
                i = act[r]
                for a in range(D):
                    acc = 0
                    for j in range(s):
                        if M.A[s * stages + j] != 0:
                            acc = acc + M.A[s * stages + j] * K[j * m * D + i * D + a]
                    ynew[i * D + a] = y[i * D + a] + h_try[i] * acc
            rc = _eval_rows(f, act, nact, D, NS, ynew, state, x_rows, out_rows, state_rows, st, K + s * m * D, nfev, fault)
            if rc != 0:
                break
        if rc != 0:
            break
        for r in range(nact):
            i = act[r]
            for a in range(D):
                acc = 0
                for j in range(stages):
                    acc = acc + M.b[j] * K[j * m * D + i * D + a]
                ynew[i * D + a] = y[i * D + a] + h_try[i] * acc
        rc = _eval_rows(f, act, nact, D, NS, ynew, state, x_rows, out_rows, state_rows, st, K + stages * m * D, nfev, fault)
        if rc != 0:
            break
        # accept / reject, per trajectory
        nacc = 0
        for r in range(nact):
            i = act[r]
            err = 0
            for a in range(D):
                if not _finite(ynew[i * D + a]):
                    fault[i] = FC_NONFINITE if fault[i] == FC_OK else fault[i]
            if adaptive and fault[i] == FC_OK:
                err5_sq, err3_sq = 0, 0
                for a in range(D):
                    sc = M.atol + M.rtol * fmax(_abs(y[i * D + a]), _abs(ynew[i * D + a]))
                    acc = 0
                    for j in range(stages + 1):
                        if M.e[j] != 0:
                            acc = acc + M.e[j] * K[j * m * D + i * D + a]
                    err5_sq += (_abs(acc) / sc) ** 2
                    if M.e3 != NULL:
                        acc = 0
                        for j in range(stages + 1):
                            if M.e3[j] != 0:
                                acc = acc + M.e3[j] * K[j * m * D + i * D + a]
                        err3_sq += (_abs(acc) / sc) ** 2
                if M.e3 != NULL:      # DOP853: |h| e5² / sqrt((e5² + e3²/100) D)
                    err = 0 if err5_sq == 0 and err3_sq == 0 else h_try[i] * err5_sq / sqrt((err5_sq + ERR3_WEIGHT * err3_sq) * D)
                else:
                    err = h_try[i] * sqrt(err5_sq / D)
            if adaptive and (fault[i] != FC_OK or not (err <= 1.0)):
                nreject[i] += 1
                if fault[i] != FC_OK or not isfinite(err):
                    h_next[i] = SHRINK_ON_FAULT * h_try[i]
                else:
                    h_next[i] = h_try[i] * fmax(FACMIN, SAFETY * pow(err, -M.alpha))
                rejected[i] = 1
                if h_next[i] < 10 * EPS * fmax(fabs(t[i]), 1.0):
                    status[i] = fault[i] if fault[i] == FC_SINGULAR else FC_STEP_UNDERFLOW
                continue
            if fault[i] != FC_OK:               # fixed step: no retry
                status[i] = fault[i]
                continue
            # accepted
            if adaptive:
                fac = FACMAX if err == 0 else SAFETY * pow(err, -M.alpha) * pow(errold[i], M.beta)
                fac = fmin(1.0 if rejected[i] else FACMAX, fmax(FACMIN, fac))
                errold[i] = fmax(err, ERR_OLD_START)
                rejected[i] = 0
                if h_try[i] == h_next[i] or fac < 1:      # a step cut short for an output keeps its h
                    h_next[i] = h_try[i] * fac
            if M.P != NULL:           # outputs inside (t, t + h_try] from the continuous extension
                while k_out[i] < nout - 1 and tout[k_out[i]] <= t[i] + h_try[i]:
                    _dense(M, m, D, i, (tout[k_out[i]] - t[i]) / h_try[i], h_try[i], y, K,
                           Y + (i * nout + k_out[i]) * D)
                    k_out[i] += 1
            tgt = tout[nout - 1] if M.P != NULL else tout[k_out[i]]
            t[i] = tgt if h_try[i] == tgt - t[i] else t[i] + h_try[i]
            nsteps[i] += 1
            d0 = 0
            for a in range(D):
                v = ynew[i * D + a]
                y[i * D + a] = v
                K[i * D + a] = K[stages * m * D + i * D + a]
                d0 += _abs(v) ** 2
            if sqrt(d0) > M.radius:
                status[i] = FC_ESCAPED
            if t[i] == tgt:
                memcpy(Y + (i * nout + k_out[i]) * D, y + i * D, D * zs)
                k_out[i] += 1
                if k_out[i] == nout and status[i] == RUNNING:
                    status[i] = FC_OK
            if status[i] == RUNNING and nsteps[i] >= M.max_steps:
                status[i] = FC_MAX_STEPS
            if tracked and status[i] == RUNNING:
                act[nacc] = i        # reuse the front of act for the accepted rows (r >= nacc)
                nacc += 1
        if tracked and nacc > 0:     # advance branch states on accepted steps only
            rc = _gather(f, act, nacc, D, NS, y, state, x_rows, state_rows)
            if rc == 0:
                rc = f.branch(nacc, <double complex*> x_rows, state_rows, False, st)
                _scatter_state(act, nacc, NS, state_rows, state, st, status)
        nact = _compact_all(act, m, status)
    free(y); free(K); free(ynew); free(t); free(h_next); free(h_try); free(errold); free(k_out)
    free(fault); free(rejected); free(state); free(act); free(x_rows); free(out_rows); free(state_rows); free(st)
    return rc


cdef void _dense(const Stepper *M, int64_t m, int D, int64_t i, double x, double h_try,
                 const scalar *y, const scalar *K, scalar *out) noexcept nogil:
    """y(t + x h_try) of trajectory i from its last step's stages (before y is advanced)."""
    cdef int j, q, a
    cdef double w, xp
    cdef scalar acc
    for a in range(D):
        out[a] = y[i * D + a]
    for j in range(M.stages + 1):
        w, xp = 0, x
        for q in range(M.NP):
            w += M.P[j * M.NP + q] * xp
            xp *= x
        if w != 0:
            for a in range(D):
                out[a] = out[a] + h_try * w * K[j * m * D + i * D + a]


cdef int64_t _compact(int64_t *act, int64_t n, const int *status) noexcept nogil:
    cdef int64_t r, k = 0
    for r in range(n):
        if status[act[r]] == RUNNING:
            act[k] = act[r]
            k += 1
    return k


cdef int64_t _compact_all(int64_t *act, int64_t m, const int *status) noexcept nogil:
    cdef int64_t i, k = 0
    for i in range(m):
        if status[i] == RUNNING:
            act[k] = i
            k += 1
    return k


cdef int _gather(Field f, const int64_t *act, int64_t n, int D, int NS, const scalar *y,
                 const double complex *state, scalar *X, double complex *SG) noexcept nogil:
    cdef int64_t r
    for r in range(n):
        memcpy(X + r * D, y + act[r] * D, D * sizeof(scalar))
        if NS > 0:
            memcpy(SG + r * NS, state + act[r] * NS, NS * sizeof(double complex))
    return 0


cdef void _scatter_state(const int64_t *act, int64_t n, int NS, const double complex *SG,
                         double complex *state, const int *st, int *status) noexcept nogil:
    cdef int64_t r
    for r in range(n):
        memcpy(state + act[r] * NS, SG + r * NS, NS * sizeof(double complex))
        if st[r] != FC_OK:
            status[act[r]] = st[r]


cdef int _eval_rows(Field f, const int64_t *act, int64_t n, int D, int NS, const scalar *y,
                    const double complex *state, scalar *X, scalar *O, double complex *SG,
                    int *st, scalar *Kout, int64_t *nfev, int *bad) noexcept nogil:
    """Kout[act[r]] = f(y[act[r]]) with each row's branch state; bad[] gets non-OK statuses."""
    cdef int64_t r
    cdef int rc
    if n == 0:
        return 0
    if act[n - 1] == n - 1:       # rows 0..n-1 all active (sorted): no gather, no scatter
        rc = _feval(f, n, <scalar*> y, <double complex*> state if NS > 0 else NULL, Kout, st)
    else:
        _gather(f, act, n, D, NS, y, state, X, SG)
        rc = _feval(f, n, X, SG if NS > 0 else NULL, O, st)
        for r in range(n):
            memcpy(Kout + act[r] * D, O + r * D, D * sizeof(scalar))
    for r in range(n):
        nfev[act[r]] += 1
        if st[r] != FC_OK and bad[act[r]] == FC_OK:
            bad[act[r]] = st[r]
    return rc


def _solve(Field field, y0, double t0, double[::1] tout, double[:, ::1] A, double[::1] b,
           e, e3, P, int order, int error_order, double beta, double dt, double rtol, double atol,
           int64_t max_steps, double radius, int threads):
    """Integrate rows of y0 [N, D] (float64 or complex128); returns Y [N, len(tout), D] and
    per-trajectory status, nfev, nsteps, nreject."""
    cdef int64_t N = y0.shape[0], nb = (N + BLOCK - 1) // BLOCK, blk, i0, mm
    cdef int D = y0.shape[1], nout = tout.shape[0], rc = 0
    cdef bint cplx = y0.dtype == np.complex128
    Y = np.full((N, nout, D), complex(np.nan, np.nan) if cplx else np.nan, dtype=y0.dtype)   # NaN in Re and Im after a stop
    status = np.zeros(N, dtype=np.intc)
    nfev = np.zeros(N, dtype=np.int64)
    nsteps = np.zeros(N, dtype=np.int64)
    nreject = np.zeros(N, dtype=np.int64)
    cdef double[::1] ev = np.ascontiguousarray(e, dtype=np.float64) if e is not None else None
    cdef double[::1] e3v = np.ascontiguousarray(e3, dtype=np.float64) if e3 is not None else None
    cdef Stepper M
    M.stages, M.A, M.b = b.shape[0], &A[0, 0], &b[0]
    M.e = &ev[0] if ev is not None else NULL
    M.e3 = &e3v[0] if e3v is not None else NULL
    cdef double[:, ::1] Pv = np.ascontiguousarray(P, dtype=np.float64) if P is not None else None
    M.P = &Pv[0, 0] if Pv is not None else NULL
    M.NP = Pv.shape[1] if Pv is not None else 0
    M.alpha = 1.0 / (error_order + 1) - 0.75 * beta if error_order > 0 else 0.0
    M.beta, M.dt, M.rtol, M.atol, M.radius, M.max_steps, M.order = beta, dt, rtol, atol, radius, max_steps, order
    cdef char *py0 = <char*> cnp.PyArray_DATA(y0)
    cdef char *pY = <char*> cnp.PyArray_DATA(Y)
    cdef int *pst = <int*> cnp.PyArray_DATA(status)
    cdef int64_t *pnf = <int64_t*> cnp.PyArray_DATA(nfev)
    cdef int64_t *pns = <int64_t*> cnp.PyArray_DATA(nsteps)
    cdef int64_t *pnr = <int64_t*> cnp.PyArray_DATA(nreject)
    cdef size_t zs = 16 if cplx else 8
    field._error = None
    cdef bint taken = take_sigint()
    try:
        for blk in prange(nb, nogil=True, num_threads=threads, schedule="dynamic"):
            i0 = blk * BLOCK
            mm = N - i0 if N - i0 < BLOCK else BLOCK
            if cplx:
                rc += _run_block(field, &M, mm, D, <double complex*> (py0 + i0 * D * zs), t0,
                                 &tout[0], nout, <double complex*> (pY + i0 * nout * D * zs),
                                 pst + i0, pnf + i0, pns + i0, pnr + i0) != 0
            else:
                rc += _run_block(field, &M, mm, D, <double*> (py0 + i0 * D * zs), t0, &tout[0],
                                 nout, <double*> (pY + i0 * nout * D * zs), pst + i0, pnf + i0,
                                 pns + i0, pnr + i0) != 0
    finally:
        interrupted = give_sigint(taken)
    if rc:
        field._raise(-1)
    return Y, status, nfev, nsteps, nreject, interrupted


# Ctrl-C for the compiled kernels (flowcore._kernels): they read this module's flag.
def _sigint_flag_address():
    return <uintptr_t> &fc_sigint_seen


def _take_sigint():
    return take_sigint()


def _give_sigint(bint taken):
    return give_sigint(taken)
