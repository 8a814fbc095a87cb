# cython: language_level=3
"""Vector fields: the spectral flows θ' = α(hH)g (+ non-principal term) and general ODEs.

One kernel serves every spectral flow: polynomial α by Horner with Hessian-vector
products, the principal flow (PF) by eigenvalues (closed form for D ≤ 2, LAPACK
above) with branch tracking of log(1 − hλ).
"""
import numpy as np
cimport numpy as cnp
cimport cython
from cython.parallel cimport prange
from libc.math cimport isfinite, fabs, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport int64_t, uintptr_t
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from flowcore.engine.checks import threads as check_threads
from flowcore.engine._loss cimport Loss
from flowcore.engine._abi cimport (fc_field_d, fc_field_z, FC_OK, FC_NONFINITE, FC_SINGULAR,
                            FC_SINGULAR_TOL, fc_log1m, fc_log1m_near, fc_phi, fc_phi_divdiff, fc_eig2,
                            fc_eigvec2)

cnp.import_array()

from flowcore.engine._scalar cimport scalar, cabs, creal, cimag, _finite

cdef double complex CNAN = NAN + 1j * NAN

# LAPACK (the PF for D > 2), from scipy's cython_lapack, looked up on the first such flow: importing
# scipy.linalg costs ~0.2 s, which `import flowcore` should not pay for D ≤ 2 and polynomial flows.
ctypedef void (*zgeev_t)(char*, char*, int*, double complex*, int*, double complex*, double complex*,
                         int*, double complex*, int*, double complex*, int*, double*, int*) noexcept nogil
ctypedef void (*zgesv_t)(int*, int*, double complex*, int*, int*, double complex*, int*, int*) noexcept nogil
ctypedef void (*dsyevd_t)(char*, char*, int*, double*, int*, double*, double*, int*, int*, int*,
                          int*) noexcept nogil
cdef zgeev_t zgeev = NULL
cdef zgesv_t zgesv = NULL
cdef dsyevd_t dsyevd = NULL


cdef void *_lapack_symbol(capi, str name) except NULL:
    capsule = capi[name]
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


def _load_lapack():
    """Fetch zgeev, zgesv and dsyevd from scipy.linalg.cython_lapack (once)."""
    global zgeev, zgesv, dsyevd
    if dsyevd != NULL:
        return
    from scipy.linalg import cython_lapack
    capi = cython_lapack.__pyx_capi__
    zgeev = <zgeev_t> _lapack_symbol(capi, "zgeev")
    zgesv = <zgesv_t> _lapack_symbol(capi, "zgesv")
    dsyevd = <dsyevd_t> _lapack_symbol(capi, "dsyevd")

cdef enum:
    CHUNK = 256      # points per kernel call from Python entry points


cdef bint _rows_finite(const scalar *a, int64_t m) noexcept nogil:
    cdef int64_t k
    for k in range(m):
        if not _finite(a[k]):
            return False
    return True


cdef tuple _views(int64_t n, int D, void *x, void *out, bint cplx):
    """numpy views [n, D] of a kernel's input and output blocks (for Python callbacks)."""
    if cplx:
        return (np.asarray(<double complex[:n * D]> <double complex*> x).reshape(n, D),
                np.asarray(<double complex[:n * D]> <double complex*> out).reshape(n, D))
    return (np.asarray(<double[:n * D]> <double*> x).reshape(n, D),
            np.asarray(<double[:n * D]> <double*> out).reshape(n, D))


cdef void _set_status(O, int *status):
    ok = np.all(np.isfinite(O), axis=-1)
    cdef Py_ssize_t i
    for i in range(ok.shape[0]):
        status[i] = FC_OK if ok[i] else FC_NONFINITE


cdef class Field:
    """A vector field θ' = f(θ) on C^D, evaluated at batches of points.

    ``f(θ)`` / ``f.evaluate(θ)`` take θ [..., D] real or complex. Fields with branch
    state (the tracked PF) also take ``state``: the per-trajectory log branches from
    ``f.branch_state(θ0)``, advanced with ``f.accept(θ, state)`` along a path.
    """

    def __init__(self):
        raise TypeError("build fields with flowcore.problems.flows.* or Field.from_expr / Field.from_callable")

    cdef int eval_d(self, int64_t n, const double *x, double *out, int *status) noexcept nogil:
        return -1

    cdef int eval_z(self, int64_t n, const double complex *x, const double complex *state,
                    double complex *out, int *status) noexcept nogil:
        return -1

    cdef int branch(self, int64_t n, const double complex *x, double complex *state,
                    bint init, int *status) noexcept nogil:
        return 0

    cdef int eval_advance(self, int64_t n, const double complex *x, const double complex *state,
                          double complex *state_out, double complex *out, int *status) noexcept nogil:
        """The general rule: evaluate, then continue a copy of the state (two evaluations;
        fields with branch state override it with one)."""
        cdef int rc = self.eval_z(n, x, state, out, status)
        if rc == 0 and self.nstate > 0:
            memcpy(state_out, state, n * self.nstate * sizeof(double complex))
            rc = self.branch(n, x, state_out, False, status)
        return rc

    def __repr__(self):
        return f"<flowcore.{type(self).__name__} {self.name!r} dim={self.dim}>"

    def _raise(self, int rc):
        err, self._error = self._error, None
        loss = getattr(self, "loss", None)
        if err is None and loss is not None:
            err = loss._take_error()         # raised in the user's Python loss
        if err is not None:
            raise err
        raise RuntimeError(f"field {self.name!r} failed (code {rc})")

    def _points(self, theta, complex_):
        from flowcore.engine._loss import _as_points
        th = _as_points(theta, self.dim, "theta")
        dtype = np.complex128 if complex_ or np.iscomplexobj(th) or self.is_complex else np.float64
        return th.shape[:-1], np.ascontiguousarray(th.reshape(-1, self.dim), dtype=dtype)

    def _state(self, state, int64_t n):
        if state is None:
            return None
        if self.nstate == 0:
            raise ValueError(f"{self.name} has no branch state; call it without state=")
        S = np.asarray(state)
        if S.dtype != np.complex128 or S.shape != (n, self.nstate) or not S.flags.c_contiguous:
            raise ValueError(f"state must be a C-contiguous complex128 array [{n}, {self.nstate}] "
                             "from field.branch_state(theta)")
        return S

    def evaluate(self, theta, state=None, *, threads=None):
        """(f(θ) [..., D], status [...]): status is a flowcore.Status per point
        (OK, NONFINITE, or SINGULAR where the PF meets hλ = 1; those rows are NaN).
        ``threads``: OpenMP threads (None: all cores; a Python field runs on one)."""
        lead, X = self._points(theta, False)
        cdef int64_t n = X.shape[0]
        S = self._state(state, n)
        out = np.empty_like(X)
        cdef int[::1] st = np.zeros(n, dtype=np.intc)
        cdef int rc = 0
        cdef void *px = cnp.PyArray_DATA(X)
        cdef void *po = cnp.PyArray_DATA(out)
        cdef const double complex *ps = <const double complex*> (<uintptr_t> S.ctypes.data if S is not None else 0)
        cdef bint cplx = X.dtype == np.complex128
        self._error = None
        cdef int64_t D = self.dim, nb = (n + CHUNK - 1) // CHUNK, c, i0, m
        cdef int nthreads = 1 if isinstance(self, PyField) or getattr(self, "kind", "") == "user" \
            else check_threads(threads)
        # Chunks of CHUNK points: small reused buffers (no page faults), OpenMP across chunks;
        # each point's value does not depend on the chunking or the thread count.
        for c in prange(nb, nogil=True, num_threads=nthreads, schedule="static"):
            i0 = c * CHUNK
            m = n - i0 if n - i0 < CHUNK else CHUNK
            if cplx:
                rc += self.eval_z(m, <double complex*>px + i0 * D,
                                  ps + i0 * self.nstate if ps != NULL else NULL,
                                  <double complex*>po + i0 * D, &st[i0]) != 0
            else:
                rc += self.eval_d(m, <double*>px + i0 * D, <double*>po + i0 * D, &st[i0]) != 0
        if rc:
            self._raise(rc)
        return out.reshape(lead + (self.dim,)), np.asarray(st).reshape(lead)

    def __call__(self, theta, state=None):
        """f(θ) [..., D]; rows where the field is singular or non-finite are NaN."""
        return self.evaluate(theta, state)[0]

    def branch_state(self, theta):
        """Initial branch state [N, nstate] at points θ [N, D] (PF: principal log, +iπ on the cut)."""
        return self._branch(theta, None, True)

    def accept(self, theta, state):
        """Continue ``state`` to the accepted points θ (in place); returns the status per point."""
        return self._branch(theta, state, False)

    def _branch(self, theta, state, bint init):
        if self.nstate == 0:
            raise ValueError(f"{self.name} has no branch state")
        _, X = self._points(theta, True)
        cdef int64_t n = X.shape[0]
        S = np.zeros((n, self.nstate), np.complex128) if init else self._state(state, n)
        cdef int[::1] st = np.zeros(n, dtype=np.intc)
        cdef int rc = 0
        cdef double complex *px = <double complex*> cnp.PyArray_DATA(X)
        cdef double complex *ps = <double complex*> (<uintptr_t> S.ctypes.data)
        if n:
            with nogil:
                rc = self.branch(n, px, ps, init, &st[0])
        if rc:
            self._raise(rc)
        return S if init else np.asarray(st)

    @staticmethod
    def from_expr(exprs, vars=None, name=None, max_ops=5000):
        """A vector field from sympy expressions (or strings), compiled to C like losses.

        ``Field.from_expr(["y", "-x"], vars=("x", "y"))`` is the rotation. Holomorphic
        functions only, so the field also runs at complex points. ``max_ops`` bounds the
        size (sympy operations) compiled without asking; ``None`` lifts it."""
        from flowcore.engine import _codegen          # (sympy and the compiler: loaded on first use)
        return _expr_field(*_codegen.compile_field(exprs, vars, name, max_ops))

    @staticmethod
    def from_callable(f, *, int dim, bint vectorized=False, str name="python field"):
        """A field from a Python function f(θ [D]) -> [D] (or [n, D] -> [n, D] when vectorized)."""
        if not callable(f):
            raise TypeError(f"f must be callable, got {type(f).__name__}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        cdef PyField self = PyField.__new__(PyField)
        self.dim, self.is_complex, self.nstate, self.name = dim, False, 0, name
        self.f, self.vectorized = f, vectorized
        return self


# ------------------------------------------------------------------ spectral flows
cdef void _horner(const scalar *g, const scalar *H, const scalar *T, int D, const double *coef,
                  int P, double h, double npc, scalar *r, scalar *tmp) noexcept nogil:
    """r = sum_p coef[p] (hH)^p g + npc T[g, g]."""
    cdef int p, a, b
    cdef scalar s
    for a in range(D):
        r[a] = coef[P - 1] * g[a]
    for p in range(P - 2, -1, -1):
        for a in range(D):
            s = 0
            for b in range(D):
                s = s + H[a * D + b] * r[b]
            tmp[a] = s
        for a in range(D):
            r[a] = coef[p] * g[a] + h * tmp[a]
    if T != NULL:
        for a in range(D):
            r[a] = r[a] + npc * T[a]


cdef inline void _horner2(const scalar *g, const scalar *H, const scalar *T, const double *coef,
                          int P, double h, double npc, scalar *r) noexcept nogil:
    """_horner for D = 2, unrolled (the common case of basins and portraits)."""
    cdef int p
    cdef scalar r0 = coef[P - 1] * g[0], r1 = coef[P - 1] * g[1], t0
    for p in range(P - 2, -1, -1):
        t0 = coef[p] * g[0] + h * (H[0] * r0 + H[1] * r1)
        r1 = coef[p] * g[1] + h * (H[2] * r0 + H[3] * r1)
        r0 = t0
    if T != NULL:
        r0 = r0 + npc * T[0]
        r1 = r1 + npc * T[1]
    r[0], r[1] = r0, r1


cdef int _poly_block(SpectralFlow self, int64_t n, const scalar *x, scalar *out,
                     int *status) noexcept nogil:
    cdef int D = self.dim, rc = 0
    cdef int64_t i, k
    cdef scalar *buf = <scalar*> malloc(n * D * (D + 2) * sizeof(scalar) + D * sizeof(scalar))
    if buf == NULL:
        return -2
    cdef scalar *g = buf
    cdef scalar *H = buf + n * D
    cdef scalar *T = NULL
    cdef scalar *tmp = buf + n * D * (D + 2)
    if self.np_coef != 0:
        T = buf + n * D * (D + 1)
    # α constant (NGF, PGF): Horner never reads H, so do not ask the loss for it
    cdef scalar *Hwant = H if self.coef.shape[0] > 1 else NULL
    if scalar is double:
        rc = self.loss.c.eval_d(self.loss.c.ctx, n, x, NULL, NULL, g, Hwant, NULL)
        if rc == 0 and T != NULL:
            rc = self.loss.c.eval_d(self.loss.c.ctx, n, x, g, NULL, NULL, NULL, T)
    else:
        rc = self.loss.c.eval_z(self.loss.c.ctx, n, x, NULL, NULL, g, Hwant, NULL)
        if rc == 0 and T != NULL:
            rc = self.loss.c.eval_z(self.loss.c.ctx, n, x, g, NULL, NULL, NULL, T)
    if rc == 0 and D == 2:
        for i in range(n):
            _horner2(g + 2 * i, H + 4 * i, T + 2 * i if T != NULL else NULL, &self.coef[0],
                     self.coef.shape[0], self.lr, self.np_coef, out + 2 * i)
            status[i] = FC_OK if _finite(out[2 * i]) and _finite(out[2 * i + 1]) else FC_NONFINITE
    elif rc == 0:
        for i in range(n):
            _horner(g + i * D, H + i * D * D, T + i * D if T != NULL else NULL, D,
                    &self.coef[0], self.coef.shape[0], self.lr, self.np_coef, out + i * D, tmp)
            status[i] = FC_OK if _rows_finite(out + i * D, D) else FC_NONFINITE
    free(buf)
    return rc


cdef inline double _overlap(int D, const double complex *p, const double complex *v) noexcept nogil:
    cdef double complex s = 0
    cdef int a
    for a in range(D):
        s = s + (creal(p[a]) - 1j * cimag(p[a])) * v[a]
    return cabs(s)


cdef void _match(int D, const double complex *prevU, const double complex *V, int *perm,
                 int *used) noexcept nogil:
    """perm[j]: the new eigenpair continuing previous direction j, by eigenvector overlap
    |u_prev^H u_new| (eigenvalues alone cannot tell a crossing from a bounce); for D = 2
    the better of the two pairings, above that greedy."""
    cdef int j, k, best
    cdef double o, obest
    if D == 1:
        perm[0] = 0
        return
    if D == 2:
        if (_overlap(2, prevU, V) + _overlap(2, prevU + 2, V + 2)
                >= _overlap(2, prevU, V + 2) + _overlap(2, prevU + 2, V)):
            perm[0], perm[1] = 0, 1
        else:
            perm[0], perm[1] = 1, 0
        return
    for k in range(D):
        used[k] = 0
    for j in range(D):
        best, obest = -1, -1
        for k in range(D):
            if not used[k]:
                o = _overlap(D, prevU + j * D, V + k * D)
                if o > obest:
                    best, obest = k, o
        perm[j] = best
        used[best] = 1


# ---------------------------------------------------------------- the PF at one point, in parts
cdef struct PfWork:
    # the point's eigen-decomposition and branch, and LAPACK's workspaces
    bint need_vec, real
    int lwork, liwork, ldw
    double complex *lam     # eigenvalues [D]
    double complex *L       # their logs log(1 - h lam) on the chosen branch [D]
    double complex *phi     # phi(h lam) [D]
    double complex *y       # V^{-1} g [D]
    double complex *A       # scratch matrix [D, D]
    double complex *V       # eigenvectors, row k the k-th [D, D]
    double complex *work
    double *rwork
    double *wd
    double *Ad
    double *workd
    int *perm               # perm[j]: today's eigenpair continuing yesterday's j-th
    int *used
    int *ipiv
    int *iwork


cdef int _pf_alloc(int D, bint need_vec, PfWork *w) noexcept nogil:
    w.need_vec, w.lwork, w.liwork, w.ldw = need_vec, 4 * D, 3 + 5 * D, 1 + 6 * D + 2 * D * D
    w.lam = <double complex*> malloc((5 * D + 2 * D * D + w.lwork) * sizeof(double complex))
    w.rwork = <double*> malloc((3 * D + w.ldw + D * D) * sizeof(double))
    w.perm = <int*> malloc((3 * D + w.liwork) * sizeof(int))
    if w.lam == NULL or w.rwork == NULL or w.perm == NULL:
        _pf_free(w)
        return -2
    w.L, w.phi, w.y = w.lam + D, w.lam + 2 * D, w.lam + 3 * D
    w.A = w.lam + 5 * D
    w.V = w.A + D * D
    w.work = w.V + D * D
    w.wd = w.rwork + 2 * D
    w.Ad = w.wd + D
    w.workd = w.Ad + D * D
    w.used, w.ipiv, w.iwork = w.perm + D, w.perm + 2 * D, w.perm + 3 * D
    return 0


cdef void _pf_free(PfWork *w) noexcept nogil:
    free(w.lam); free(w.rwork); free(w.perm)
    w.lam = NULL; w.rwork = NULL; w.perm = NULL


cdef int _pf_eig(int D, const double complex *g, const double complex *H, PfWork *w) noexcept nogil:
    """Eigenvalues of H into w.lam (eigenvectors into w.V when w.need_vec): closed forms for
    D <= 2, LAPACK's dsyevd for a real H, zgeev for a complex one."""
    cdef int k, info = 0, one = 1
    cdef char jobv = b'V' if w.need_vec else b'N'
    cdef char jobn = b'N', uplo = b'U'
    if not (_rows_finite(g, D) and _rows_finite(H, D * D)):
        return FC_NONFINITE
    w.real = True
    for k in range(D * D):
        if cimag(H[k]) != 0:
            w.real = False
    if D == 1:
        w.lam[0] = H[0]
    elif D == 2:
        fc_eig2(H[0], H[1], H[3], &w.lam[0], &w.lam[1])
        if w.need_vec:
            for k in range(2):
                fc_eigvec2(H[0], H[1], H[3], w.lam[k], k, w.V + 2 * k)
    elif w.real:
        for k in range(D * D):
            w.Ad[k] = creal(H[k])
        dsyevd(&jobv, &uplo, &D, w.Ad, &D, w.wd, w.workd, &w.ldw, w.iwork, &w.liwork, &info)
        for k in range(D):
            w.lam[k] = w.wd[k]
        if w.need_vec:
            for k in range(D * D):
                w.V[k] = w.Ad[k]
    else:
        memcpy(w.A, H, D * D * sizeof(double complex))
        zgeev(&jobn, &jobv, &D, w.A, &D, w.lam, NULL, &one, w.V, &D, w.work, &w.lwork, w.rwork, &info)
    return FC_OK if info == 0 else FC_NONFINITE


cdef int _pf_logs(int D, double h, const double complex *state, PfWork *w) noexcept nogil:
    """The branch of each log(1 - h lam): continued from the previous point's (state: its
    eigenvalues, logs and eigenvectors, matched by eigenvector overlap) or principal (NULL);
    FC_SINGULAR where |1 - h lam| < FC_SINGULAR_TOL."""
    cdef int j, k
    if state != NULL:
        _match(D, state + 2 * D, w.V, w.perm, w.used)
        for j in range(D):
            k = w.perm[j]
            w.L[k] = fc_log1m_near(h * w.lam[k], state[D + j])
    else:
        for k in range(D):
            w.perm[k] = k
            w.L[k] = fc_log1m(h * w.lam[k])
    for k in range(D):
        if cabs(1 - h * w.lam[k]) < FC_SINGULAR_TOL:
            return FC_SINGULAR
    return FC_OK


cdef void _pf_store(int D, double complex *state, PfWork *w) noexcept nogil:
    """The point's eigenvalues, logs and eigenvectors, in the previous point's order."""
    cdef int j, a
    for j in range(D):
        state[j] = w.lam[w.perm[j]]
        state[D + j] = w.L[w.perm[j]]
        for a in range(D):
            state[2 * D + j * D + a] = w.V[w.perm[j] * D + a] if D > 1 else 1.0


cdef int _pf_apply(int D, double h, const double complex *g, const double complex *H, PfWork *w,
                   double complex *out) noexcept nogil:
    """out = phi(hH) g: phi(h lam) g in 1-D; in 2-D by divided differences,
    phi(z1) g + h phi[z1, z2] (H - lam1 I) g; else V diag(phi) V^{-1} g."""
    cdef int k, a, info = 0, one = 1
    cdef double complex z1, z2, p1, p12, s
    if D == 1:
        out[0] = fc_phi(h * w.lam[0], w.L[0]) * g[0]
        return FC_OK
    if D == 2:
        z1, z2 = h * w.lam[0], h * w.lam[1]
        p1 = fc_phi(z1, w.L[0])
        p12 = h * fc_phi_divdiff(z1, w.L[0], z2, w.L[1])
        for a in range(2):
            s = H[a * 2] * g[0] + H[a * 2 + 1] * g[1] - w.lam[0] * g[a]
            out[a] = p1 * g[a] + p12 * s
        return FC_OK
    for k in range(D):
        w.phi[k] = fc_phi(h * w.lam[k], w.L[k])
    if w.real:      # orthonormal V: V^{-1} g = V^T g
        for k in range(D):
            s = 0
            for a in range(D):
                s = s + w.V[k * D + a] * g[a]
            w.y[k] = s
    else:
        memcpy(w.A, w.V, D * D * sizeof(double complex))
        memcpy(w.y, g, D * sizeof(double complex))
        zgesv(&D, &one, w.A, &D, w.ipiv, w.y, &D, &info)
        if info != 0:
            return FC_NONFINITE
    for a in range(D):
        s = 0
        for k in range(D):
            s = s + w.V[k * D + a] * w.phi[k] * w.y[k]
        out[a] = s
    return FC_OK


cdef class SpectralFlow(Field):
    """θ' = α(hH) g + c·T[g, g]: the spectral flows of Rosca et al. (2023), Table 1.

    ``kind='poly'``: α(z) = Σ_p coef[p] z^p (NGF, PGF, IGR, BEA-n, third-order),
    evaluated by Horner with H·v products. ``kind='pf'``: α(z) = log(1 − z)/z, the
    principal flow, by eigenvalues of H (closed form for D ≤ 2, LAPACK above) with the
    log's branch continued along a trajectory (state = eigenvalues, logs, eigenvectors).
    ``kind='user'``: α given as a Python callable of z = hλ [n, D] (sorted by
    decreasing real part, so index 0 is the top direction u₀), evaluated with numpy.
    """

    def __repr__(self):
        return f"<flowcore.SpectralFlow {self.name!r} lr={self.lr:g} dim={self.dim}>"

    def _repr_latex_(self):
        from flowcore.engine.expressions import latex_spectral_flow
        return latex_spectral_flow(self.kind, self.coefficients, self.lr, self.np_coef, self.loss, self.nstate > 0)

    @property
    def coefficients(self):
        """Polynomial coefficients of α (poly flows), low order first."""
        return np.asarray(self.coef).copy() if self.kind == "poly" else None

    cdef int eval_d(self, int64_t n, const double *x, double *out, int *status) noexcept nogil:
        if self.kcode == 0:
            return _poly_block(self, n, x, out, status)
        return self._user_block(n, <void*>x, False, out, status)

    cdef int eval_z(self, int64_t n, const double complex *x, const double complex *state,
                    double complex *out, int *status) noexcept nogil:
        cdef int code = self.kcode
        if code == 0:
            return _poly_block(self, n, x, out, status)
        if code == 2:
            return self._user_block(n, <void*>x, True, out, status)
        return self._pf_eval(n, x, state, NULL, out, status)

    cdef int eval_advance(self, int64_t n, const double complex *x, const double complex *state,
                          double complex *state_out, double complex *out, int *status) noexcept nogil:
        if self.kcode != 1:
            return Field.eval_advance(self, n, x, state, state_out, out, status)
        return self._pf_eval(n, x, state, state_out, out, status)

    cdef int _pf_eval(self, int64_t n, const double complex *x, const double complex *state,
                      double complex *state_out, double complex *out, int *status) noexcept nogil:
        """The PF (+ np_coef T[g, g]) at x, continuing state (NULL: principal); state_out (may be
        NULL) receives the continued state."""
        cdef int D = self.dim, rc
        cdef int64_t i
        cdef double complex *buf = <double complex*> malloc(n * D * (D + 2) * sizeof(double complex))
        if buf == NULL:
            return -2
        cdef double complex *g = buf
        cdef double complex *H = buf + n * D
        cdef double complex *T = buf + n * D * (D + 1)
        rc = self.loss.c.eval_z(self.loss.c.ctx, n, x, NULL, NULL, g, H, NULL)
        if rc == 0:
            rc = self._pf_rows(n, g, H, state, state_out, out, status)
        if rc == 0 and self.np_coef != 0:
            rc = self.loss.c.eval_z(self.loss.c.ctx, n, x, g, NULL, NULL, NULL, T)
            for i in range(n * D):
                out[i] = out[i] + self.np_coef * T[i]
        free(buf)
        return rc

    cdef int branch(self, int64_t n, const double complex *x, double complex *state,
                    bint init, int *status) noexcept nogil:
        cdef int D = self.dim, rc
        cdef double complex *buf = <double complex*> malloc(n * D * (D + 1) * sizeof(double complex))
        if buf == NULL:
            return -2
        rc = self.loss.c.eval_z(self.loss.c.ctx, n, x, NULL, NULL, buf, buf + n * D, NULL)
        if rc == 0:
            rc = self._pf_rows(n, buf, buf + n * D, NULL if init else state, state, NULL, status)
        free(buf)
        return rc

    cdef int _pf_rows(self, int64_t n, const double complex *g, const double complex *H,
                      const double complex *state_in, double complex *state_out,
                      double complex *out, int *status) noexcept nogil:
        """PF at n points from their g and H. With state_in, eigenvalues are matched to the
        previous ones and each log continued from its previous value; state_out (may
        alias state_in) receives the new eigenvalues and logs; out (may be NULL) the field."""
        cdef int D = self.dim
        cdef int S = 2 * D + D * D        # state per trajectory: eigenvalues, logs, eigenvectors
        cdef bint tracked = state_in != NULL or state_out != NULL
        cdef PfWork w
        cdef int64_t i, a
        if _pf_alloc(D, (out != NULL and D > 2) or (tracked and D > 1), &w) != 0:
            return -2
        for i in range(n):
            status[i] = _pf_eig(D, g + i * D, H + i * D * D, &w)
            if status[i] == FC_OK:
                status[i] = _pf_logs(D, self.lr, state_in + i * S if state_in != NULL else NULL, &w)
            if status[i] == FC_OK and state_out != NULL:
                _pf_store(D, state_out + i * S, &w)
            if status[i] == FC_OK and out != NULL:
                status[i] = _pf_apply(D, self.lr, g + i * D, H + i * D * D, &w, out + i * D)
            if status[i] != FC_OK and out != NULL:
                for a in range(D):
                    out[i * D + a] = CNAN
        _pf_free(&w)
        return 0

    cdef int _user_block(self, int64_t n, void *x, bint cplx, void *out, int *status) noexcept nogil:
        with gil:
            try:
                X, O = _views(n, self.dim, x, out, cplx)
                g, H = self.loss.grad(X), self.loss.hess(X)
                lam, V = np.linalg.eig(H)
                order = np.argsort(-lam.real, axis=-1, kind="stable")
                lam = np.take_along_axis(lam, order, -1)
                V = np.take_along_axis(V, order[:, None, :], -1)
                a = np.asarray(self.alpha(self.lr * lam), dtype=complex)
                try:
                    a = np.broadcast_to(a, lam.shape)
                except ValueError:
                    raise ValueError(f"alpha must return an array of shape {lam.shape} "
                                     f"(or broadcastable to it), got {a.shape}") from None
                y = np.linalg.solve(V, g.astype(complex)[..., None])[..., 0]
                f = np.einsum("nab,nb->na", V, a * y)
                if not cplx:
                    if np.any(np.abs(f.imag) > 1e-12 * (1 + np.abs(f.real))):
                        raise ValueError("alpha gives a complex field at real points; "
                                         "evaluate at complex points (theta.astype(complex))")
                    f = f.real
                O[...] = f
                _set_status(O, status)
                return 0
            except BaseException as exc:
                self._error = exc
                return -1


def _spectral(Loss loss, double lr, str kind, coef=(), double np_coef=0.0, alpha=None,
              bint track=True, str name=""):
    """Build a SpectralFlow (used by flowcore.problems.flows)."""
    cdef SpectralFlow self = SpectralFlow.__new__(SpectralFlow)
    self.loss, self.lr, self.kind, self.np_coef, self.alpha = loss, lr, kind, np_coef, alpha
    self.dim, self.name = loss.dim, name
    self.coef = np.ascontiguousarray(coef if len(coef) else [0.0], dtype=np.float64)
    self.kcode = {"poly": 0, "pf": 1, "user": 2}[kind]
    self.is_complex = kind == "pf"
    self.nstate = (2 * loss.dim + loss.dim ** 2) if (kind == "pf" and track) else 0
    if kind == "pf" and loss.dim > 2:
        _load_lapack()
    return self


cdef class ExprField(Field):
    """A vector field compiled from sympy expressions (Field.from_expr)."""

    def _repr_latex_(self):
        from flowcore.engine.expressions import latex_field
        return latex_field(self.exprs, self.vars)

    cdef int eval_d(self, int64_t n, const double *x, double *out, int *status) noexcept nogil:
        cdef int rc = self.fd(NULL, n, x, out)
        cdef int64_t i
        for i in range(n):
            status[i] = FC_OK if _rows_finite(out + i * self.dim, self.dim) else FC_NONFINITE
        return rc

    cdef int eval_z(self, int64_t n, const double complex *x, const double complex *state,
                    double complex *out, int *status) noexcept nogil:
        cdef int rc = self.fz(NULL, n, x, out)
        cdef int64_t i
        for i in range(n):
            status[i] = FC_OK if _rows_finite(out + i * self.dim, self.dim) else FC_NONFINITE
        return rc


def _expr_field(str name, int dim, object lib, uintptr_t fd, uintptr_t fz, exprs, vars):
    cdef ExprField self = ExprField.__new__(ExprField)
    self.dim, self.is_complex, self.nstate, self.name = dim, False, 0, name
    self.fd, self.fz, self.lib = <fc_field_d> fd, <fc_field_z> fz, lib
    self.exprs, self.vars = tuple(exprs), tuple(vars)
    return self


cdef class PyField(Field):
    """A vector field from a Python function: the slow fallback (takes the GIL)."""

    cdef int eval_d(self, int64_t n, const double *x, double *out, int *status) noexcept nogil:
        return self._call(n, <void*>x, False, <void*>out, status)

    cdef int eval_z(self, int64_t n, const double complex *x, const double complex *state,
                    double complex *out, int *status) noexcept nogil:
        return self._call(n, <void*>x, True, <void*>out, status)

    cdef int _call(self, int64_t n, void *x, bint cplx, void *out, int *status) noexcept nogil:
        with gil:
            try:
                X, O = _views(n, self.dim, x, out, cplx)
                if self.vectorized:
                    O[...] = self.f(X)
                else:
                    for i in range(n):
                        O[i] = self.f(X[i])
                _set_status(O, status)
                return 0
            except BaseException as exc:
                self._error = exc
                return -1


cdef class StatefulPyField(Field):
    """A complex field from a Python object that carries its own branch state (the matrix-free PF):
    ``impl.evaluate(X [n, D], S [n, nstate] or None, advance) -> (F [n, D], status [n], S_new)``
    (S_new: S continued to X when ``advance``, else None) and ``impl.initial(X) -> S``."""

    cdef int eval_d(self, int64_t n, const double *x, double *out, int *status) noexcept nogil:
        return -1          # complex-valued: evaluate() and the integrators pass complex points

    cdef int eval_z(self, int64_t n, const double complex *x, const double complex *state,
                    double complex *out, int *status) noexcept nogil:
        return self._call(n, x, state, NULL, out, status)

    cdef int eval_advance(self, int64_t n, const double complex *x, const double complex *state,
                          double complex *state_out, double complex *out, int *status) noexcept nogil:
        return self._call(n, x, state, state_out, out, status)

    cdef int branch(self, int64_t n, const double complex *x, double complex *state,
                    bint init, int *status) noexcept nogil:
        with gil:
            try:
                X = np.asarray(<double complex[:n * self.dim]> x).reshape(n, self.dim)
                S = np.asarray(<double complex[:n * self.nstate]> state).reshape(n, self.nstate)
                if init:
                    S[...] = self.impl.initial(X.copy())
                    st = np.zeros(n, np.intc)
                else:
                    _, st, S_new = self.impl.evaluate(X.copy(), S.copy(), True)
                    S[...] = S_new
                for i in range(n):
                    status[i] = st[i]
                return 0
            except BaseException as exc:
                self._error = exc
                return -1

    cdef int _call(self, int64_t n, const double complex *x, const double complex *state,
                   double complex *state_out, double complex *out, int *status) noexcept nogil:
        with gil:
            try:
                X = np.asarray(<double complex[:n * self.dim]> x).reshape(n, self.dim).copy()
                S = None if state == NULL else \
                    np.asarray(<double complex[:n * self.nstate]> state).reshape(n, self.nstate).copy()
                F, st, S_new = self.impl.evaluate(X, S, state_out != NULL)
                np.asarray(<double complex[:n * self.dim]> out).reshape(n, self.dim)[...] = F
                if state_out != NULL:
                    np.asarray(<double complex[:n * self.nstate]> state_out).reshape(n, self.nstate)[...] = S_new
                for i in range(n):
                    status[i] = st[i]
                return 0
            except BaseException as exc:
                self._error = exc
                return -1


def _stateful_field(impl, int dim, int nstate, str name):
    """A StatefulPyField around ``impl`` (see the class)."""
    cdef StatefulPyField self = StatefulPyField.__new__(StatefulPyField)
    self.dim, self.is_complex, self.nstate, self.name, self.impl = dim, True, nstate, name, impl
    return self


def _phi_at(z, L):
    """φ(z) = L/z elementwise for logs L = log(1 − z) on a chosen branch (a series near 0 on
    the principal one)."""
    zz = np.array(z, dtype=np.complex128, order="C")
    LL = np.array(np.broadcast_to(L, zz.shape), dtype=np.complex128, order="C")
    out = np.empty_like(zz)
    cdef double complex[::1] zi = zz.reshape(-1)
    cdef double complex[::1] li = LL.reshape(-1)
    cdef double complex[::1] o = out.reshape(-1)
    cdef Py_ssize_t k
    for k in range(zi.shape[0]):
        o[k] = fc_phi(zi[k], li[k])
    return out


def _log1m(z, Lprev=None):
    """log(1 − z) elementwise: principal (+iπ on the cut), or, given ``Lprev``, the branch nearest
    to it (the continuation rule of the tracked PF)."""
    zz = np.array(z, dtype=np.complex128, order="C")
    out = np.empty_like(zz)
    cdef double complex[::1] zi = zz.reshape(-1)
    cdef double complex[::1] o = out.reshape(-1)
    cdef double complex[::1] pi
    cdef Py_ssize_t k
    if Lprev is None:
        for k in range(zi.shape[0]):
            o[k] = fc_log1m(zi[k])
    else:
        pp = np.array(np.broadcast_to(Lprev, zz.shape), dtype=np.complex128, order="C")
        pi = pp.reshape(-1)
        for k in range(zi.shape[0]):
            o[k] = fc_log1m_near(zi[k], pi[k])
    return out


SINGULAR_TOL = FC_SINGULAR_TOL


def _phi_values(z):
    """φ(z) = log(1 − z)/z elementwise (principal branch, +iπ on the cut; series near 0)."""
    zz = np.ascontiguousarray(z, dtype=np.complex128)
    out = np.empty_like(zz)
    cdef double complex[::1] zi = zz.reshape(-1)
    cdef double complex[::1] o = out.reshape(-1)
    cdef Py_ssize_t k
    for k in range(zi.shape[0]):
        o[k] = fc_phi(zi[k], fc_log1m(zi[k]))
    return out
