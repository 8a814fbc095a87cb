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
from flowcore.engine._field cimport Field
from flowcore.engine._abi cimport (FC_OK, FC_ESCAPED, FC_MAX_STEPS, FC_STEP_UNDERFLOW, FC_NONFINITE,
                            FC_SINGULAR, FC_INTERRUPTED, fc_interrupt_pending, fc_sigint_seen,
                            take_sigint, give_sigint)

cnp.import_array()

from flowcore.engine._scalar cimport scalar, cabs, creal, cimag, _finite, _abs

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


cdef struct Block:     # one block's working arrays; the scalar ones (double or double complex) untyped
    int64_t m
    int D, NS, nout
    void *y                        # [m, D]
    void *K                        # [stages + 1, m, D]: the stages; K[s] = f(y⁺) (FSAL)
    void *ynew                     # [m, D]: a stage's input, then the step's end
    void *x_rows                   # [m, D] gathered rows for a field call
    void *out_rows                 # [m, D]
    double *t
    double *h_next                 # the step to try next
    double *h_try                  # the step being tried
    double *errold
    int *k_out
    int *fault                     # the first non-OK field status of the step being tried
    int *rejected
    int *st                        # statuses of one field call's rows
    double complex *state          # [m, NS] branch state at y
    double complex *state_new      # [m, NS] at the step's end (adopted when it is accepted)
    double complex *state_rows     # [m, NS] gathered
    double complex *state_rows_new
    int64_t *act                   # the running rows
    int *status
    int64_t *nfev
    int64_t *nsteps
    int64_t *nreject


cdef int _alloc(Block *B, int stages, size_t zs) noexcept nogil:
    cdef int64_t m = B.m, D = B.D, NS = B.NS
    B.y, B.ynew, B.x_rows, B.out_rows = malloc(m * D * zs), malloc(m * D * zs), malloc(m * D * zs), malloc(m * D * zs)
    B.K = malloc((stages + 1) * m * D * zs)
    B.t, B.h_next = <double*> malloc(m * sizeof(double)), <double*> malloc(m * sizeof(double))
    B.h_try, B.errold = <double*> malloc(m * sizeof(double)), <double*> malloc(m * sizeof(double))
    B.k_out, B.fault = <int*> malloc(m * sizeof(int)), <int*> malloc(m * sizeof(int))
    B.rejected, B.st = <int*> malloc(m * sizeof(int)), <int*> malloc(m * sizeof(int))
    B.state = <double complex*> malloc((m * NS + 1) * sizeof(double complex))
    B.state_new = <double complex*> malloc((m * NS + 1) * sizeof(double complex))
    B.state_rows = <double complex*> malloc((m * NS + 1) * sizeof(double complex))
    B.state_rows_new = <double complex*> malloc((m * NS + 1) * sizeof(double complex))
    B.act = <int64_t*> malloc(m * sizeof(int64_t))
    if (B.y == NULL or B.ynew == NULL or B.x_rows == NULL or B.out_rows == NULL or B.K == NULL
            or B.t == NULL or B.h_next == NULL or B.h_try == NULL or B.errold == NULL or B.k_out == NULL
            or B.fault == NULL or B.rejected == NULL or B.st == NULL or B.state == NULL
            or B.state_new == NULL or B.state_rows == NULL or B.state_rows_new == NULL or B.act == NULL):
        return -2
    return 0


cdef void _free(Block *B) noexcept nogil:
    free(B.y); free(B.ynew); free(B.x_rows); free(B.out_rows); free(B.K); free(B.t); free(B.h_next)
    free(B.h_try); free(B.errold); free(B.k_out); free(B.fault); free(B.rejected); free(B.st)
    free(B.state); free(B.state_new); free(B.state_rows); free(B.state_rows_new); free(B.act)


cdef int _feval(Field f, int64_t n, scalar *x, double complex *state, double complex *state_new,
                scalar *out, int *status) noexcept nogil:
    """f at n points; with state_new, also the state continued to the points (one evaluation)."""
    if scalar is double:
        return f.eval_d(n, x, out, status)
    elif state_new != NULL:
        return f.eval_advance(n, x, state, state_new, out, status)
    else:
        return f.eval_z(n, x, state, out, status)


cdef int _eval_rows(Field f, Block *B, int64_t n, const scalar *x, scalar *Kout,
                    bint advance) noexcept nogil:
    """Kout[i] = f(x[i]) for the running rows i = act[0..n) with each row's branch state; with
    advance, state_new[i] = that state continued to x[i]. fault[i] keeps a row's first non-OK
    status; nfev counts."""
    cdef int64_t r, i
    cdef int rc, D = B.D, NS = B.NS
    cdef const int64_t *act = B.act
    cdef double complex *S = B.state if NS > 0 else NULL
    cdef double complex *Snew = B.state_new if NS > 0 and advance else NULL
    if n == 0:
        return 0
    if act[n - 1] == n - 1:       # rows 0..n-1 all running (sorted): no gather, no scatter
        rc = _feval(f, n, <scalar*> x, S, Snew, Kout, B.st)
    else:
        for r in range(n):
            memcpy(<scalar*> B.x_rows + r * D, x + act[r] * D, D * sizeof(scalar))
            if NS > 0:
                memcpy(B.state_rows + r * NS, B.state + act[r] * NS, NS * sizeof(double complex))
        rc = _feval(f, n, <scalar*> B.x_rows, B.state_rows if S != NULL else NULL,
                    B.state_rows_new if Snew != NULL else NULL, <scalar*> B.out_rows, B.st)
        for r in range(n):
            memcpy(Kout + act[r] * D, <scalar*> B.out_rows + r * D, D * sizeof(scalar))
            if Snew != NULL:
                memcpy(Snew + act[r] * NS, B.state_rows_new + r * NS, NS * sizeof(double complex))
    for r in range(n):
        i = act[r]
        B.nfev[i] += 1
        if B.st[r] != FC_OK and B.fault[i] == FC_OK:
            B.fault[i] = B.st[r]
    return rc


cdef int64_t _start(Field f, const Stepper *M, Block *B, const scalar *y0, double t0, int *rc) noexcept nogil:
    """Every row at t0: finite starts run; the branch state at y0 and K[0] = f(y0). Returns the
    number of running rows (listed in act)."""
    cdef int64_t i, n = 0, m = B.m
    cdef int a, D = B.D
    cdef scalar *y = <scalar*> B.y
    memcpy(y, y0, m * D * sizeof(scalar))
    for i in range(m):
        B.t[i], B.k_out[i], B.errold[i], B.rejected[i], B.fault[i] = t0, 0, ERR_OLD_START, 0, FC_OK
        B.nfev[i], B.nsteps[i], B.nreject[i] = 0, 0, 0
        B.status[i] = RUNNING
        for a in range(D):
            if not _finite(y[i * D + a]):
                B.status[i] = FC_NONFINITE
        if B.status[i] == RUNNING:
            B.act[n] = i
            n += 1
    if scalar is not double and B.NS > 0:      # the tracked PF: the principal branch at y0
        for i in range(n):
            memcpy(<scalar*> B.x_rows + i * D, y + B.act[i] * D, D * sizeof(scalar))
        rc[0] = f.branch(n, <double complex*> B.x_rows, B.state_rows, True, B.st)
        for i in range(n):
            memcpy(B.state + B.act[i] * B.NS, B.state_rows + i * B.NS, B.NS * sizeof(double complex))
            if B.st[i] != FC_OK:
                B.status[B.act[i]] = B.st[i]
    if rc[0] == 0:
        rc[0] = _eval_rows(f, B, n, y, <scalar*> B.K, False)
    for i in range(n):
        if B.fault[B.act[i]] != FC_OK:
            B.status[B.act[i]] = B.fault[B.act[i]]
    return _compact(B.act, n, B.status)


cdef int _first_steps(Field f, const Stepper *M, Block *B, int64_t n, const scalar *y, double span) noexcept nogil:
    """h_next of the n running rows: the fixed dt, the user's first step, or Hairer's selection
    (Solving ODEs I, II.4: one more evaluation at y0 + h0 f(y0))."""
    cdef int64_t r, i, m = B.m
    cdef int a, D = B.D, rc = 0
    cdef double d0, d1, d2, sc
    cdef const scalar *K = <scalar*> B.K
    cdef scalar *K1 = <scalar*> B.K + M.stages * m * D
    cdef scalar *x = <scalar*> B.ynew
    cdef bint adaptive = M.e != NULL
    for r in range(n):
        i = B.act[r]
        if not adaptive or M.dt > 0:
            B.h_next[i] = M.dt if not adaptive else fmin(M.dt, span)
            continue
        d0, d1 = 0, 0
        for a in range(D):
            sc = M.atol + M.rtol * _abs(y[i * D + a])
            d0 += (_abs(y[i * D + a]) / sc) ** 2
            d1 += (_abs(K[i * D + a]) / sc) ** 2
        d0, d1 = sqrt(d0 / D), sqrt(d1 / D)
        B.h_next[i] = H0_FALLBACK if (d0 < H0_NEGLIGIBLE or d1 < H0_NEGLIGIBLE) else H0_FRACTION * d0 / d1
        B.h_next[i] = fmin(B.h_next[i], span)
        for a in range(D):
            x[i * D + a] = y[i * D + a] + B.h_next[i] * K[i * D + a]
    if not adaptive or M.dt > 0:
        return 0
    rc = _eval_rows(f, B, n, x, K1, False)
    for r in range(n):
        i = B.act[r]
        d1, d2 = 0, 0
        for a in range(D):
            sc = M.atol + M.rtol * _abs(y[i * D + a])
            d1 += (_abs(K[i * D + a]) / sc) ** 2
            d2 += (_abs(K1[i * D + a] - K[i * D + a]) / sc) ** 2
        d1, d2 = sqrt(d1 / D), sqrt(d2 / D) / B.h_next[i]
        if d1 <= 1e-15 and d2 <= 1e-15:
            B.h_next[i] = fmax(H0_FALLBACK, B.h_next[i] * 1e-3)
        else:
            B.h_next[i] = fmin(H0_GROWTH * B.h_next[i], pow(H0_FRACTION / fmax(d1, d2), 1.0 / (M.order + 1)))
        if not isfinite(B.h_next[i]) or B.fault[i] != FC_OK:
            B.h_next[i] = H0_FALLBACK * fmax(1.0, span)
        B.fault[i] = FC_OK
    return rc


cdef int _attempt(Field f, const Stepper *M, Block *B, int64_t n, const scalar *y, const double *tout) noexcept nogil:
    """One step of h_try (landing on the next output) for the n running rows: the stages, ynew
    and K[s] = f(ynew), which also carries the branch state at ynew (state_new)."""
    cdef int64_t r, i, m = B.m
    cdef int s, j, a, D = B.D, stages = M.stages, rc = 0
    cdef double tgt
    cdef const double *w
    cdef scalar acc
    cdef scalar *K = <scalar*> B.K
    cdef scalar *ynew = <scalar*> B.ynew
    for r in range(n):
        i = B.act[r]
        # land exactly on the next output (or, with dense output, on the end only); a remainder
        # within rounding of a full step joins it
        tgt = tout[B.nout - 1] if M.P != NULL else tout[B.k_out[i]]
        B.h_try[i] = B.h_next[i] if B.t[i] + B.h_next[i] * (1 + 1e-9) < tgt else tgt - B.t[i]
        B.fault[i] = FC_OK
    for s in range(1, stages + 1):           # stage s's input; s = stages: the step's end
        w = M.A + s * stages if s < stages else M.b
        for r in range(n):
            i = B.act[r]
            for a in range(D):
                acc = 0
                for j in range(s):
                    if w[j] != 0 or s == stages:
                        acc = acc + w[j] * K[j * m * D + i * D + a]
                ynew[i * D + a] = y[i * D + a] + B.h_try[i] * acc
        rc = _eval_rows(f, B, n, ynew, K + s * m * D, s == stages)
        if rc != 0:
            return rc
    return 0


cdef double _error_norm(const Stepper *M, int64_t m, int D, int64_t i, const scalar *y,
                        const scalar *ynew, const scalar *K, double h) noexcept nogil:
    """The scaled error of row i's step (Hairer's norm; DOP853's combined 5th/3rd-order form)."""
    cdef double sq5 = 0, sq3 = 0, sc
    cdef scalar acc
    cdef int a, j
    for a in range(D):
        sc = M.atol + M.rtol * fmax(_abs(y[i * D + a]), _abs(ynew[i * D + a]))
        acc = 0
        for j in range(M.stages + 1):
            if M.e[j] != 0:
                acc = acc + M.e[j] * K[j * m * D + i * D + a]
        sq5 += (_abs(acc) / sc) ** 2
        if M.e3 != NULL:
            acc = 0
            for j in range(M.stages + 1):
                if M.e3[j] != 0:
                    acc = acc + M.e3[j] * K[j * m * D + i * D + a]
            sq3 += (_abs(acc) / sc) ** 2
    if M.e3 != NULL:      # DOP853: |h| e5² / sqrt((e5² + e3²/100) D)
        return 0 if sq5 == 0 and sq3 == 0 else h * sq5 / sqrt((sq5 + ERR3_WEIGHT * sq3) * D)
    return h * sqrt(sq5 / D)


cdef bint _control(const Stepper *M, Block *B, int64_t i, double err) noexcept nogil:
    """The PI controller's verdict on row i's step (Hairer, Nørsett & Wanner I, II.4): True to
    accept; h_next for the next try either way; a fixed-step fault ends the row."""
    cdef double fac, h = B.h_try[i]
    cdef int fault = B.fault[i]
    if M.e == NULL:                         # fixed step: no retry
        if fault != FC_OK:
            B.status[i] = fault
        return fault == FC_OK
    if fault != FC_OK or not (err <= 1.0):
        B.nreject[i] += 1
        B.h_next[i] = SHRINK_ON_FAULT * h if fault != FC_OK or not isfinite(err) \
            else h * fmax(FACMIN, SAFETY * pow(err, -M.alpha))
        B.rejected[i] = 1
        if B.h_next[i] < 10 * EPS * fmax(fabs(B.t[i]), 1.0):
            B.status[i] = fault if fault == FC_SINGULAR else FC_STEP_UNDERFLOW
        return False
    fac = FACMAX if err == 0 else SAFETY * pow(err, -M.alpha) * pow(B.errold[i], M.beta)
    fac = fmin(1.0 if B.rejected[i] else FACMAX, fmax(FACMIN, fac))
    B.errold[i] = fmax(err, ERR_OLD_START)
    B.rejected[i] = 0
    if h == B.h_next[i] or fac < 1:      # a step cut short for an output keeps its h
        B.h_next[i] = h * fac
    return True


cdef void _advance(const Stepper *M, Block *B, int64_t i, scalar *y, const double *tout, scalar *Y) noexcept nogil:
    """Row i takes its accepted step: outputs inside it (dense) or at its end, y, K[0] and the
    branch state move on; ESCAPED, OK (last output) or MAX_STEPS end the row."""
    cdef int a, D = B.D, NS = B.NS
    cdef int64_t m = B.m
    cdef double d0 = 0, tgt
    cdef scalar *K = <scalar*> B.K
    cdef const scalar *ynew = <scalar*> B.ynew
    if M.P != NULL:           # outputs inside (t, t + h_try] from the continuous extension
        while B.k_out[i] < B.nout - 1 and tout[B.k_out[i]] <= B.t[i] + B.h_try[i]:
            _dense(M, m, D, i, (tout[B.k_out[i]] - B.t[i]) / B.h_try[i], B.h_try[i], y, K,
                   Y + (i * B.nout + B.k_out[i]) * D)
            B.k_out[i] += 1
    tgt = tout[B.nout - 1] if M.P != NULL else tout[B.k_out[i]]
    B.t[i] = tgt if B.h_try[i] == tgt - B.t[i] else B.t[i] + B.h_try[i]
    B.nsteps[i] += 1
    for a in range(D):
        y[i * D + a] = ynew[i * D + a]
        K[i * D + a] = K[M.stages * m * D + i * D + a]
        d0 += _abs(ynew[i * D + a]) ** 2
    if NS > 0:
        memcpy(B.state + i * NS, B.state_new + i * NS, NS * sizeof(double complex))
    if sqrt(d0) > M.radius:
        B.status[i] = FC_ESCAPED
    if B.t[i] == tgt:
        memcpy(Y + (i * B.nout + B.k_out[i]) * D, y + i * D, D * sizeof(scalar))
        B.k_out[i] += 1
        if B.k_out[i] == B.nout and B.status[i] == RUNNING:
            B.status[i] = FC_OK
    if B.status[i] == RUNNING and B.nsteps[i] >= M.max_steps:
        B.status[i] = FC_MAX_STEPS


cdef int _run_block(Field f, const Stepper *M, int64_t m, int D, const scalar *y0, double t0,
                    const double *tout, int nout, scalar *Y, int *status, int64_t *nfev,
                    int64_t *nsteps, int64_t *nreject) noexcept nogil:
    """Integrate m trajectories from y0 [m, D] at t0 through the output times tout[nout];
    Y [m, nout, D] receives y at each output time (left untouched after a stop)."""
    cdef Block B
    cdef int rc = 0, a
    cdef int64_t r, i, n = 0
    cdef double err
    B.m, B.D, B.NS, B.nout = m, D, f.nstate if scalar is not double else 0, nout
    B.status, B.nfev, B.nsteps, B.nreject = status, nfev, nsteps, nreject
    rc = _alloc(&B, M.stages, sizeof(scalar))
    if rc == 0:
        n = _start(f, M, &B, y0, t0, &rc)
    if rc == 0:
        rc = _first_steps(f, M, &B, n, <scalar*> B.y, tout[nout - 1] - t0)
    while rc == 0 and n > 0:
        if fc_interrupt_pending():
            for r in range(n):
                status[B.act[r]] = FC_INTERRUPTED
            break
        rc = _attempt(f, M, &B, n, <scalar*> B.y, tout)
        if rc != 0:
            break
        for r in range(n):
            i = B.act[r]
            for a in range(D):
                if not _finite((<scalar*> B.ynew)[i * D + a]) and B.fault[i] == FC_OK:
                    B.fault[i] = FC_NONFINITE
            err = _error_norm(M, m, D, i, <scalar*> B.y, <scalar*> B.ynew, <scalar*> B.K, B.h_try[i]) \
                if M.e != NULL and B.fault[i] == FC_OK else 0.0
            if _control(M, &B, i, err):
                _advance(M, &B, i, <scalar*> B.y, tout, Y)
        n = _compact(B.act, n, status)
    _free(&B)
    return rc


cdef int64_t _compact(int64_t *act, int64_t n, const int *status) noexcept nogil:
    """Keep the running rows of act[0..n), in order; returns their number."""
    cdef int64_t r, k = 0
    for r in range(n):
        if status[act[r]] == RUNNING:
            act[k] = act[r]
            k += 1
    return k


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


# Ctrl-C for the compiled kernels (flowcore.engine._kernels): they read this module's flag.
def _sigint_flag_address():
    return <uintptr_t> &fc_sigint_seen


def _take_sigint():
    return take_sigint()


def _give_sigint(bint taken):
    return give_sigint(taken)
