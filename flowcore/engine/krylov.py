"""The principal flow without forming the Hessian: φ(hH)∇E by Arnoldi on Hessian–vector products.

The PF is θ' = φ(hH) g with φ(z) = log(1 − z)/z and g = ∇E. For a network the dense path forms H
(D² entries, D Hessian–vector products' worth of work) and its eigendecomposition (O(D³)) at every
evaluation. Here instead (Saad 1992; Hochbruck & Lubich 1997), with β = ‖g‖ and v₀ = g/β, Arnoldi
builds an orthonormal basis V_m of the Krylov space span{g, Hg, …, H^{m−1}g} from m products H·v
and the small Hessenberg matrix H_m = V_mᴴ H V_m, and

    φ(hH) g ≈ β V_m φ(h H_m) e₁,

φ of the m×m matrix from its eigendecomposition (its eigenvalues are the Ritz values θ_k). At a
real point H is symmetric and H_m tridiagonal (Lanczos); at a complex point H is complex symmetric
and Arnoldi treats it as any matrix.

**Error and dimension.** The estimate of an approximation is its distance to the next one (a few
products later): m grows through 8, 10, 12, 14, 16, 20, … until that distance is below ``tol`` times
the result's norm, or the Krylov space is invariant (then the result is exact). The estimate is
that of the approximation before the last, so it bounds the error of the one returned whenever
the iteration converges (tested against the dense PF).

**Branch.** As the dense tracked PF, each direction's log(1 − hλ) is continued along a trajectory,
carried here on the Ritz values: the state holds up to ``TRACKED`` Ritz values z = hθ and their logs —
those whose log is off the principal branch (once across the cut [1, ∞) a log stays on its sheet
wherever z goes) and those with Re z > ½, which may reach the cut (the others cannot cross it
before they are tracked). At the next point each tracked value is matched to the nearest new Ritz value (greedily, by
|Δz|), whose log takes the branch nearest the tracked one (the dense path's rule, fc_log1m_near);
a Ritz value matched to none is on the principal branch (+iπ on the cut at a real point). A
direction that g does not excite has no Ritz value and no part in φ(hH)g. Statuses as the dense
path's: SINGULAR where a Ritz value has |1 − hθ| < 1e-12, NONFINITE on a non-finite g or H·v.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowcore.engine.checks import positive
from flowcore.engine._field import SINGULAR_TOL, _log1m, _phi_at, _stateful_field
from flowcore.engine._status import Status

TRACKED = 16                     # Ritz values (and their logs) carried in a trajectory's state
CHECKS = (8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256, 320, 384, 448,
          512)                   # the dimensions at which convergence is tested
ROOM = 16                        # a basis's first room (vectors), doubled as needed
TRACK_FROM = 0.5                 # Re z above which a Ritz value's branch is carried


@dataclass(frozen=True)
class Krylov:
    """The matrix-free PF's settings (:mod:`flowcore.engine.krylov`): at each evaluation the
    Arnoldi dimension grows until the a-posteriori estimate of φ(hH)g's error (its distance to
    the next approximation) is below ``tol``·‖φ(hH)g‖. The default 1e-11 keeps the field's
    error far below any integrator tolerance; a looser one (about rtol/100) needs fewer
    Hessian–vector products: one GD step of the digits MLP at hλ_max = 2.5 (dopri5, rtol 1e-6)
    took 28 instead of 32 an evaluation at 1e-8, its end point as far from a tight reference
    (1.93e-6 of the step) as at 1e-11 (benchmarks/README.md)."""
    tol: float = 1e-11

    def __post_init__(self):
        object.__setattr__(self, "tol", positive(self.tol, "tol (the Krylov error estimate, relative)"))
        if self.tol >= 1:
            raise ValueError(f"Krylov tol must be below 1 (relative to ‖φ(hH)g‖), got {self.tol!r}")


def krylov_setting(value):
    """``krylov`` as a PF reads it: None (matrix-free above fc.nn.KRYLOV_MIN_DIM parameters),
    False (dense), or a :class:`Krylov` (True is ``Krylov()``)."""
    if value is None or value is False or isinstance(value, Krylov):
        return value
    if value is True:
        return Krylov()
    raise TypeError(f"krylov must be True, False, None (matrix-free for networks above fc.nn.KRYLOV_MIN_DIM "
                    f"parameters) or fc.Krylov(tol=...), got {value!r}")


class KrylovPF:
    """The matrix-free PF of a loss with Hessian–vector products (a JAX loss): what
    :func:`krylov_pf` wraps as a field. Counts its work in ``stats``."""

    def __init__(self, functions, dim, lr, np_coef=0.0, tol=1e-11, track=True):
        functions._table(np.zeros((1, dim), np.complex128))   # the PF runs at complex points: refuse ReLU now
        self.f, self.dim, self.lr, self.np_coef, self.tol, self.track = functions, dim, lr, np_coef, tol, track
        self.nstate = 2 * TRACKED if track else 0
        self.stats = {"evaluations": 0, "hvps": 0, "dims": [], "estimates": []}
        self._guess = {}                # real/complex → the Krylov dimension to extend to first

    # ------------------------------------------------------------------ the field's protocol
    def initial(self, X):
        return self.evaluate(X, None, True)[2]

    def evaluate(self, X, S, advance):
        """(φ(hH)g [+ c T[g, g]] at the rows of X, statuses, the state continued to X or None)."""
        X = np.asarray(X, np.complex128)
        n = len(X)
        F = np.full((n, self.dim), np.nan + 0j)
        status = np.full(n, int(Status.OK), np.intc)
        state = np.full((n, self.nstate), np.nan + 0j) if advance and self.track else None
        real = np.all(X.imag == 0, axis=1)      # real points in real arithmetic: +iπ on the cut, exactly
        for rows in (np.flatnonzero(real), np.flatnonzero(~real)):
            if rows.size:
                self._rows(X[rows], rows, real[rows[0]], S, F, status, state)
        if self.np_coef:
            F += self.np_coef * self._third(X, status)
        F[status != Status.OK] = np.nan
        return F, status, state

    # ------------------------------------------------------------------ the work
    def _rows(self, X, rows, real, S, F, status, state):
        """The rows ``rows`` of the result, all real points or all complex ones."""
        Xc = X.real.copy() if real else X
        self.f._table(Xc)                               # refuses a non-holomorphic loss at complex points
        y, st, tracked = self._arnoldi(Xc, not real, None if S is None else S[rows])
        F[rows], status[rows] = y, st
        if state is not None:
            state[rows] = tracked

    def _arnoldi(self, X, complex_, S):
        """Arnoldi at each row of X: (y [n, D], status, state). A row ends when its estimate is below
        ``tol``, it failed, its Krylov space is invariant, or at the last check (keeping its last
        approximation and estimate); the rows' small problems are solved together.

        Cost: the first extension goes straight to the dimension the previous call needed (one
        dispatch, where a small network's products cost less than the calls around them), then one
        check at a time. A basis has room for a power of two ≥ the dimension reached, doubled on
        demand: its Gram–Schmidt runs over every row of V, and room for 128 vectors where 32 are
        used cost as much as the product itself at D ≈ 10⁵."""
        n = len(X)
        checks = [c for c in CHECKS if c <= _ceil_check(self.dim)]
        first = max([c for c in checks if c <= self._guess.get(complex_, checks[0])] or [checks[0]])
        room = [ROOM] * n
        start = self.f.arnoldi(ROOM, complex_)[0]
        parts = [start(x) for x in X]                   # (g, V, Hm, β) per row
        V, Hm = [p[1] for p in parts], [p[2] for p in parts]
        beta = np.array([complex(p[3]).real for p in parts])
        self.stats["evaluations"] += n
        status = np.full(n, int(Status.OK), np.intc)
        status[~np.isfinite(beta)] = Status.NONFINITE
        settled = (beta == 0) | (status != Status.OK)  # at a critical point φ(hH)g = 0
        y = np.zeros((n, self.dim), np.complex128)
        prev = np.full((n, checks[-1]), np.nan + 0j)
        z_of, L_of = [None] * n, [None] * n
        used, estimate = np.zeros(n, int), np.zeros(n)
        j, at = 0, checks.index(first)
        while at < len(checks) and not settled.all():
            m = checks[at]
            live = np.flatnonzero(~settled)
            for i in live:
                while m > room[i]:                      # more room in the basis
                    grown = self.f.arnoldi(room[i], complex_)[3]
                    V[i], Hm[i] = grown(V[i], Hm[i])
                    room[i] *= 2
                extend = self.f.arnoldi(room[i], complex_)[1]
                V[i], Hm[i] = extend(X[i], V[i], Hm[i], j, m)
            self.stats["hvps"] += len(live) * (m - j)
            j = m
            Hn = np.stack([np.asarray(Hm[i])[:m + 1, :m] for i in live])
            # a first extension past one check also compares the last two dimensions it reached
            ended = []
            if at and m == first:
                c = checks[at - 1]
                ended += self._check(c, False, Hn[:, :c + 1, :c], live, beta, S, status, settled, prev, z_of, L_of,
                                     used, estimate)
            ended += self._check(m, m == checks[-1], Hn, live, beta, S, status, settled, prev, z_of, L_of, used,
                                 estimate)
            for i in ended:                             # these rows' approximations, from their bases
                coef = np.zeros(room[i], np.complex128)
                coef[:used[i]] = prev[i, :used[i]]
                combine = self.f.arnoldi(room[i], complex_)[2]
                y[i] = np.asarray(combine(V[i], coef))
            at += 1
        fin = settled & (status == Status.OK) & (used > 0)
        if fin.any():                   # the next call extends first to what this one needed, or one check
            need = int(used[fin].max())   # less if that sufficed (probing down as the need falls)
            self._guess[complex_] = need if need > first else checks[max(checks.index(first) - 1, 0)]
        self.stats["dims"] += used[fin].tolist()
        self.stats["estimates"] += estimate[fin].tolist()
        tracked = np.full((n, self.nstate), np.nan + 0j)
        if self.nstate:
            for i in np.flatnonzero(fin):
                tracked[i] = _tracked(z_of[i], L_of[i])
        return y, status, tracked

    def _check(self, m, last, Hn, live, beta, S, status, settled, prev, z_of, L_of, used, estimate):
        """The approximations at dimension m (Hn [len(live), m + 1, m]) of the rows ``live`` still
        open, into ``prev``: returns the rows that end here (converged, failed, invariant, or at the
        ``last`` check); their coefficients are prev[i, :used[i]]."""
        act = np.flatnonzero(~settled[live])            # positions in live
        rows, Hn = live[act], Hn[act]
        finite = np.all(np.isfinite(Hn), axis=(1, 2))
        status[rows[~finite]] = Status.NONFINITE
        settled[rows[~finite]] = True
        rows, Hn = rows[finite], Hn[finite]
        ks = _invariant(Hn, m)                          # H_k is all of H on the Krylov space
        ended = []
        for k in np.unique(ks):
            grp, Hk = rows[ks == k], Hn[ks == k][:, :k, :k]
            c, z, L, st = self._coefficients(Hk, beta[grp], None if S is None else S[grp])
            bad = st != Status.OK
            status[grp[bad]], settled[grp[bad]] = st[bad], True
            grp, c, z, L = grp[~bad], c[~bad], z[~bad], L[~bad]
            pad = np.zeros((len(grp), prev.shape[1]), np.complex128)
            pad[:, :k] = c
            first = np.isnan(prev[grp, 0])
            est = np.where(first, np.inf, np.linalg.norm(np.where(first[:, None], 0, pad - prev[grp]), axis=1))
            prev[grp] = pad
            for a, i in enumerate(grp):
                z_of[i], L_of[i] = z[a], L[a]
            stop = (k < m) | (est <= self.tol * np.linalg.norm(c, axis=1)) | last
            settled[grp[stop]], used[grp[stop]] = True, k
            estimate[grp[stop]] = np.where(k < m, 0.0, est[stop])
            ended += grp[stop].tolist()
        return ended

    def _coefficients(self, H, beta, S):
        """β φ(hH) e₁ for r small Hessenberg matrices H [r, k, k] at once, with the branch rule:
        (c [r, k], Ritz values z [r, k], their logs L [r, k], statuses [r])."""
        h = self.lr
        r, k = H.shape[:2]
        status = np.full(r, int(Status.OK), np.intc)
        try:
            scale = np.maximum(np.abs(H).max(axis=(1, 2)), 1e-300)
            hermitian = np.abs(H - np.conj(np.swapaxes(H, 1, 2))).max(axis=(1, 2)) <= 1e-13 * scale
            if np.all(H.imag == 0):
                lam, W = np.linalg.eigh(H.real)
                lam = lam.astype(np.complex128)
                w = W[:, 0, :] * beta[:, None]               # W⁻¹ e₁ β = Wᵀ e₁ β
            elif np.all(hermitian):
                # H real at a complex point (a quadratic loss): the Ritz values are real, and the
                # general eig would give them imaginary parts of rounding's random sign — which put
                # log(1 − hλ) for hλ > 1 on either side of the cut (±iπ: an O(1) error)
                lam, W = np.linalg.eigh(0.5 * (H + np.conj(np.swapaxes(H, 1, 2))))
                lam = lam.astype(np.complex128)
                w = np.conj(W[:, 0, :]) * beta[:, None]      # W⁻¹ e₁ β = Wᴴ e₁ β
            else:
                lam, W = np.linalg.eig(H)
                e1 = np.zeros((r, k, 1), np.complex128)
                e1[:, 0, 0] = beta
                w = np.linalg.solve(W, e1)[..., 0]
        except np.linalg.LinAlgError:
            return (np.zeros((r, k), np.complex128),) * 3 + (np.full(r, int(Status.NONFINITE), np.intc),)
        z = h * lam
        status[np.any(np.abs(1 - z) < SINGULAR_TOL, axis=1)] = Status.SINGULAR
        L = _log1m(z)
        if self.track and S is not None:
            for a in range(r):
                L[a] = _branch_logs(z[a], L[a], S[a])
        c = np.einsum("rij,rj->ri", W, _phi_at(z, L) * w)
        status[(status == Status.OK) & ~np.all(np.isfinite(c), axis=1)] = Status.NONFINITE
        return c, z, L, status

    def _third(self, X, status):
        """T[g, g] at the rows of X (the non-principal term), by JAX."""
        g = self.f.grad(X)
        return self.f.third(X, g)


def _ceil_check(m):
    return next((c for c in CHECKS if c >= m), CHECKS[-1])


INVARIANT_TOL = 1e-11


def _invariant(H, m):
    """Per matrix of H [r, m + 1, m]: k ≤ m, the first k with H[k, k − 1] negligible (span{v₀ … v_{k−1}}
    is invariant under H), else m."""
    scale = np.maximum(np.abs(H[:, :m, :m]).max(axis=(1, 2)), 1e-300)
    sub = np.abs(np.diagonal(H[:, 1:m + 1, :m], axis1=1, axis2=2))          # [r, m]
    # 1e-11, not rounding level: on a repeated eigenvalue the Krylov space ends, but H[k, k − 1] is
    # rounding amplified (1.5e-13 of the scale on a linear network with two equal outputs), and
    # continuing adds ghost copies of Ritz values whose eigenvectors are nearly parallel: at complex
    # points the general eigendecomposition then amplified the error to O(1). Stopping early leaves
    # an error of the order of the subdiagonal entry times the coefficients'.
    small = sub <= INVARIANT_TOL * scale[:, None]
    return np.where(small.any(axis=1), small.argmax(axis=1) + 1, m)


def _branch_logs(z, L, S):
    """log(1 − z) per Ritz value: continued from the tracked values of state S (nearest first, each
    used once), else L (the principal logs)."""
    Sz, SL = S[:TRACKED], S[TRACKED:]
    old = np.flatnonzero(np.isfinite(Sz))
    if old.size == 0:
        return L
    L = L.copy()
    d = np.abs(z[:, None] - Sz[None, old])                # [k, tracked]
    free_new, free_old = np.ones(len(z), bool), np.ones(old.size, bool)
    for flat in np.argsort(d, axis=None):
        a, b = divmod(int(flat), old.size)
        if free_new[a] and free_old[b]:
            L[a] = _log1m(z[a:a + 1], SL[old[b]:old[b] + 1])[0]
            free_new[a] = free_old[b] = False
            if not free_old.any():
                break
    return L


def _tracked(z, L):
    """The state to carry: the Ritz values whose log is off the principal branch (it stays there
    wherever z goes, until it crosses the cut back) and those with Re z > TRACK_FROM, which may reach
    the cut [1, ∞) — the off-principal ones first, then by Re z, TRACKED at most — and their logs."""
    off = np.abs(L - _log1m(z)) > 1.0                     # 2πk off, k ≠ 0
    keep = np.flatnonzero(off | (z.real > TRACK_FROM))
    keep = keep[np.lexsort((-z.real[keep], ~off[keep]))][:TRACKED]
    out = np.full(2 * TRACKED, np.nan + 0j)
    out[:keep.size], out[TRACKED:TRACKED + keep.size] = z[keep], L[keep]
    return out


def krylov_pf(functions, dim, lr, np_coef=0.0, tol=1e-11, track=True, name="pf (Krylov)"):
    """The matrix-free PF as a flowcore Field (complex, with branch state when ``track``); its
    ``impl.stats`` counts evaluations, Hessian–vector products, Krylov dimensions and estimates."""
    return _stateful_field(KrylovPF(functions, dim, lr, np_coef, tol, track), dim, 2 * TRACKED if track else 0, name)
