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
products later): m grows through 8, 12, 16, 24, 32, … until that distance is below ``tol`` times
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

import numpy as np

from flowcore._field import SINGULAR_TOL, _log1m, _phi_at, _stateful_field
from flowcore._status import Status

TRACKED = 16                     # Ritz values (and their logs) carried in a trajectory's state
CHECKS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)   # dimensions at which to test
TRACK_FROM = 0.5                 # Re z above which a Ritz value's branch is carried


class KrylovPF:
    """The matrix-free PF of a loss with Hessian–vector products (a JAX loss): what
    :func:`krylov_pf` wraps as a field. Counts its work in ``stats``."""

    def __init__(self, functions, dim, lr, np_coef=0.0, tol=1e-11, track=True):
        functions._table(np.zeros((1, dim), np.complex128))   # the PF runs at complex points: refuse ReLU now
        self.f, self.dim, self.lr, self.np_coef, self.tol, self.track = functions, dim, lr, np_coef, tol, track
        self.nstate = 2 * TRACKED if track else 0
        self.stats = {"evaluations": 0, "hvps": 0, "dims": [], "estimates": []}

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
        Xc = X.real.copy() if real else X
        self.f._table(Xc)                               # refuses a non-holomorphic loss at complex points
        n = len(Xc)
        pad = (1 << max(n - 1, 0).bit_length()) - n      # a few batch shapes, each compiled once
        Xp = np.concatenate([Xc, np.repeat(Xc[:1], pad, axis=0)]) if pad else Xc
        m_max = _ceil_check(min(self.dim, 64))
        while True:
            last = m_max >= _ceil_check(self.dim) or m_max == CHECKS[-1]
            out = self._arnoldi(Xp, n, m_max, not real, S if S is None else S[rows], last)
            if out is not None:
                break
            m_max = _ceil_check(min(2 * m_max, self.dim))      # not converged in this space: a bigger one
        y, st, tracked = out
        F[rows], status[rows] = y, st
        if state is not None:
            state[rows] = tracked

    def _arnoldi(self, Xp, n, m_max, complex_, S, last):
        """Run Arnoldi to convergence within m_max on the n rows of Xp (padded); None when some row
        has not converged by m_max (the caller grows it) unless ``last`` (the largest space: a row not
        converged keeps its last approximation and its estimate), else (y [n, D], status, state)."""
        start, extend = self.f.arnoldi(m_max, complex_)
        g, V, Hm, beta = start(Xp)
        beta = np.asarray(beta)[:n]
        self.stats["evaluations"] += n
        status = np.full(n, int(Status.OK), np.intc)
        status[~np.isfinite(beta)] = Status.NONFINITE
        done = np.zeros(n, bool)
        coef = np.zeros((n, m_max), np.complex128)
        prev = [None] * n
        logs = [None] * n
        used = np.zeros(n, int)
        estimate = np.zeros(n)
        j, checks = 0, [c for c in CHECKS if c <= m_max]
        j_last = checks[-1]
        for m in checks:
            V, Hm = extend(Xp, V, Hm, j, m)
            self.stats["hvps"] += n * (m - j)
            j = m
            Hn = np.asarray(Hm)[:n]
            for i in np.flatnonzero(~done & (status == Status.OK)):
                if beta[i] == 0:                           # at a critical point φ(hH)g = 0
                    done[i] = True
                    continue
                H = Hn[i]
                if not np.all(np.isfinite(H)):
                    status[i] = Status.NONFINITE
                    continue
                k = _invariant(H, m)                       # H_k is all of H on the Krylov space
                c, z, L = self._coefficients(H[:k, :k], beta[i], S if S is None else S[i])
                if c is None:
                    status[i] = Status.SINGULAR if L == "singular" else Status.NONFINITE
                    continue
                est = np.inf if prev[i] is None else np.linalg.norm(c - np.r_[prev[i], np.zeros(k - len(prev[i]))])
                prev[i], logs[i] = c, (z, L)
                if k < m or est <= self.tol * np.linalg.norm(c) or (last and m == j_last):
                    done[i], used[i], estimate[i] = True, k, 0.0 if k < m else est
                    coef[i, :k] = c
            if np.all(done | (status != Status.OK)):
                break
        if not np.all(done | (status != Status.OK)):
            return None
        self.stats["dims"] += used[done].tolist()
        self.stats["estimates"] += estimate[done].tolist()
        import jax.numpy as jnp
        m_used = max(int(used.max(initial=1)), 1)
        y = np.asarray(jnp.einsum("nmd,nm->nd", V[:n, :m_used], jnp.asarray(coef[:, :m_used])))
        y = y.astype(np.complex128)
        tracked = np.full((n, self.nstate), np.nan + 0j)
        if self.nstate:
            for i in np.flatnonzero(done):
                if logs[i] is not None:
                    tracked[i] = _tracked(*logs[i])
        return y, status, tracked

    def _coefficients(self, H, beta, S):
        """β φ(hH) e₁ for the small Hessenberg H [k, k] with the branch rule; (c, Ritz values z, their
        logs L), or (None, None, 'singular' | 'nonfinite')."""
        h = self.lr
        k = len(H)
        try:
            if np.all(np.abs(H.imag) == 0):
                lam, W = np.linalg.eigh(H.real)
                lam = lam.astype(np.complex128)
                w = W[0] * beta                         # W⁻¹ e₁ β = Wᵀ e₁ β
            else:
                lam, W = np.linalg.eig(H)
                w = np.linalg.solve(W, np.eye(k, 1)[:, 0] * beta)
        except np.linalg.LinAlgError:
            return None, None, "nonfinite"
        z = h * lam
        if np.any(np.abs(1 - z) < SINGULAR_TOL):
            return None, None, "singular"
        L = _branch_logs(z, S if self.track else None)
        c = W @ (_phi_at(z, L) * w)
        if not np.all(np.isfinite(c)):
            return None, None, "nonfinite"
        return c, z, L

    def _third(self, X, status):
        """T[g, g] at the rows of X (the non-principal term), by JAX."""
        g = self.f.grad(X)
        return self.f.third(X, g)


def _ceil_check(m):
    return next((c for c in CHECKS if c >= m), CHECKS[-1])


def _invariant(H, m):
    """k ≤ m: the first k with H[k, k − 1] negligible (span{v₀ … v_{k−1}} is invariant under H), else m."""
    scale = max(np.max(np.abs(H[:m, :m])), 1e-300)
    sub = np.abs(np.diagonal(H[1:m + 1, :m]))
    small = np.flatnonzero(sub <= 1e-14 * scale)
    return int(small[0]) + 1 if small.size else m


def _branch_logs(z, S):
    """log(1 − z) per Ritz value: continued from the tracked values of state S (nearest first, each
    used once), else principal."""
    L = _log1m(z)
    if S is None:
        return L
    Sz, SL = S[:TRACKED], S[TRACKED:]
    old = np.flatnonzero(np.isfinite(Sz))
    if old.size == 0:
        return L
    d = np.abs(z[:, None] - Sz[None, old])                # [k, tracked]
    free_new, free_old = np.ones(len(z), bool), np.ones(old.size, bool)
    for flat in np.argsort(d, axis=None):
        a, b = divmod(int(flat), old.size)
        if free_new[a] and free_old[b]:
            L[a] = _log1m(z[a:a + 1], SL[old[b]:old[b] + 1])[0]
            free_new[a] = free_old[b] = False
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
