"""The central flow of gradient descent (Cohen, Damian, Talwalkar, Kolter, Lee, ICLR 2025,
arXiv 2410.24206): a model of the *time-averaged* GD trajectory at the edge of stability.

Time is counted in GD steps (t = n ↔ θ_n). With η the learning rate,

    dθ/dt = −η [∇E(θ) + ½ ∇_θ ⟨Σ, H(θ)⟩],      Σ = U X Uᵀ,

where U [D, k] holds the Hessian eigenvectors whose eigenvalues have reached 2/η (the critical
set) and X ⪰ 0 [k, k] solves the complementarity problem of the paper

    X ⪰ 0,   A + B[X] ⪰ 0,   ⟨X, A + B[X]⟩ = 0,
    A_ab = ⟨∇E, T[u_a, u_b]⟩,   B[X]_ab = ½ Σ_ij X_ij ⟨T[u_a, u_b], T[u_i, u_j]⟩,

which says: the critical eigenvalues do not rise (η(A + B[X]) = −d/dt UᵀHU ⪰ 0), and X lives
where they would. ∇⟨Σ, H⟩ = Σ_ij X_ij T[u_i, u_j] (Σ held fixed). It is the optimality condition of
min_{X ⪰ 0} ⟨A, X⟩ + ¼‖Σ_ij X_ij T[u_i, u_j]‖², a convex quadratic program on the k×k PSD cone,
solved here without a modelling language (:func:`cone_solve`). With one critical direction
σ² = max(0, 2⟨−∇E, ∇S⟩/‖∇S‖²), S = λ_max, and the flow is −η∇E projected on the tangent of
{S = 2/η}. The predicted time average of GD's loss is E + ½⟨Σ, H⟩ = E + tr(X)/η on the critical set.
"""
from dataclasses import dataclass, field

import numpy as np

import flowcore as fc
from flowcore.engine.checks import positive
from flowcore.engine.progress import Progress

CENTRAL_SOLVER = fc.Dop853(rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- the cone problem
def _svec_basis(k):
    """Index pairs (i, j), i ≤ j, and the weight of each in svec (1 on the diagonal, √2 off it),
    so that ⟨X, Y⟩ = svec(X)·svec(Y)."""
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    w = np.array([1.0 if i == j else np.sqrt(2.0) for i, j in pairs])
    return pairs, w


def _svec(X, pairs, w):
    return np.array([X[i, j] for i, j in pairs]) * w


def _smat(x, pairs, w, k):
    X = np.zeros((k, k))
    for (i, j), v, c in zip(pairs, x, w):
        X[i, j] = X[j, i] = v / c
    return X


def _psd_projection(X):
    lam, V = np.linalg.eigh((X + X.T) / 2)
    return (V * np.maximum(lam, 0)) @ V.T


STALLED_AT = 1e-8       # cone_solve: a residual this small that stops improving is the inputs' rounding
STALL = 500             # … for this many iterations


def cone_solve(A, tau, tol=1e-14, max_iter=20000):
    """The solution X ⪰ 0 [k, k] of X ⪰ 0, A + B[X] ⪰ 0, ⟨X, A + B[X]⟩ = 0 with
    B[X]_ab = ½ Σ_ij X_ij ⟨τ_ab, τ_ij⟩, ``tau`` [k, k, D] symmetric in its first two indices.

    Accelerated projected gradient on min ⟨A, X⟩ + ¼‖Σ X_ij τ_ij‖² over the PSD cone (restarted
    when the objective rises), then a polish on the face the iterate found: X = V Y Vᵀ with V
    the range of X, Y from the linear equations Vᵀ(A + B[X])V = 0. Returns (X, residual), the
    residual the largest violation of the three conditions (relative to ‖A‖).
    """
    A = np.asarray(A, float)
    k = A.shape[0]
    if k == 0:
        return np.zeros((0, 0)), 0.0
    pairs, w = _svec_basis(k)
    M = np.stack([tau[i, j] * c for (i, j), c in zip(pairs, w)], axis=1)        # [D, m]: M svec(X) = Σ X_ij τ_ij
    G = 0.5 * M.T @ M                                                           # svec(B[X]) = G svec(X)
    a = _svec(A, pairs, w)
    scale = max(np.max(np.abs(A)), 1e-300)
    L = max(np.linalg.eigvalsh(G)[-1], 1e-300)
    x = y = _svec(_psd_projection(-A / L), pairs, w)
    tk, f_old = 1.0, np.inf
    best, best_res, gained = None, np.inf, 0
    for it in range(max_iter):
        if it % 10 == 0:                           # the face found so far, solved exactly
            X = _polish(_smat(x, pairs, w, k), A, G, pairs, w, k)
            r = _residual(X, A, G, pairs, w, k) / scale
            if r < 0.5 * best_res:
                gained = it
            if r < best_res:
                best, best_res = X, r
            # done: at tol, or at rounding level (≤ STALLED_AT) with no gain for STALL iterations
            if best_res <= tol or (best_res <= STALLED_AT and it - gained >= STALL):
                break
        x_new = _svec(_psd_projection(_smat(y - (a + G @ y) / L, pairs, w, k)), pairs, w)
        f = a @ x_new + 0.5 * x_new @ G @ x_new
        if f > f_old:                              # restart the momentum
            tk, y = 1.0, x
            continue
        t_new = (1 + np.sqrt(1 + 4 * tk * tk)) / 2
        y = x_new + (tk - 1) / t_new * (x_new - x)
        x, tk, f_old = x_new, t_new, f
    return best, best_res


def _grad(X, A, G, pairs, w, k):
    return A + _smat(G @ _svec(X, pairs, w), pairs, w, k)


def _residual(X, A, G, pairs, w, k):
    """The largest violation of X ⪰ 0, A + B[X] ⪰ 0 and complementarity, the last as ‖X Z‖
    (first order in an error of X's range; ⟨X, Z⟩ is second order there)."""
    Z = _grad(X, A, G, pairs, w, k)
    return max(0.0, -np.linalg.eigvalsh(X)[0], -np.linalg.eigvalsh(Z)[0], np.max(np.abs(X @ Z)))


def _polish(X, A, G, pairs, w, k):
    """Solve the conditions on the face the iterate found: with r its rank, X = L Lᵀ (L [k, r]) and
    (A + B[L Lᵀ]) L = 0, a smooth system solved by Levenberg–Marquardt from the iterate's factor.
    Kept only when it satisfies the conditions better."""
    from scipy.optimize import least_squares
    lam, V = np.linalg.eigh(X)
    r = int(np.sum(lam > 1e-9 * max(lam[-1], 1e-300)))
    zero = np.zeros((k, k))
    if r == 0:
        return zero if _residual(zero, A, G, pairs, w, k) <= _residual(X, A, G, pairs, w, k) else X

    def gradient_on_face(l):
        L = l.reshape(k, r)
        return (_grad(L @ L.T, A, G, pairs, w, k) @ L).ravel()
    L0 = V[:, -r:] * np.sqrt(lam[-r:])
    sol = least_squares(gradient_on_face, L0.ravel(), method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    L = sol.x.reshape(k, r)
    Xp = L @ L.T
    return Xp if _residual(Xp, A, G, pairs, w, k) <= _residual(X, A, G, pairs, w, k) else X


# ----------------------------------------------------------------------------- the flow
def _third_pairs(loss, theta, U):
    """τ_ab = T[u_a, u_b] [k, k, D] by polarisation, T[u, v] = ¼(T[u+v, u+v] − T[u−v, u−v]),
    in one batched call."""
    D, k = U.shape
    vs, idx = [], []
    for a in range(k):
        for b in range(a, k):
            if a == b:
                vs.append(U[:, a])
            else:
                vs += [U[:, a] + U[:, b], U[:, a] - U[:, b]]
            idx.append((a, b))
    T = loss.third(np.broadcast_to(theta, (len(vs), D)), np.array(vs)) if vs else np.zeros((0, D))
    tau = np.zeros((k, k, D))
    n = 0
    for a, b in idx:
        if a == b:
            tau[a, a] = T[n]
            n += 1
        else:
            tau[a, b] = tau[b, a] = (T[n] - T[n + 1]) / 4
            n += 2
    return tau


MATRIX_FREE_DIM = 400      # a JAX loss above this dimension: its top eigenpairs from H·v, H never formed
RESIDUAL_TOL = 1e-11       # matrix-free eigenpairs: ‖Hu − λu‖ ≤ RESIDUAL_TOL·|λ_max| for each one returned
BLOCK_EXTRA = 2            # matrix-free: directions searched beyond the k wanted
MAX_BASIS = 60             # matrix-free: basis size at which the search restarts from its best vectors


class TopEigenpairs:
    """The top eigenpairs of H(θ) the central flow needs, with the work they took.

    For a loss given by formulas or at most MATRIX_FREE_DIM parameters: every eigenpair, from H
    (LAPACK). For a larger JAX loss (a network): the top k from Hessian–vector products alone, by a
    block Krylov search with Rayleigh–Ritz (:func:`top_by_blocks`). A block, not Lanczos from one
    vector: the central flow pins its critical eigenvalues together at 2/η, and a single Krylov
    sequence finds only one vector of a (nearly) repeated eigenvalue. The block starts from the
    previous call's top vectors (``warm``), so that a flow's successive calls at nearby points take
    few products; ``hvps`` counts them."""

    def __init__(self, loss, matrix_free=None, warm=True):
        self.loss = loss
        self.matrix_free = fc.nn.is_jax(loss) and loss.dim > MATRIX_FREE_DIM if matrix_free is None else matrix_free
        if self.matrix_free and not fc.nn.is_jax(loss):
            raise ValueError(f"the matrix-free central flow needs Hessian–vector products: {loss.name!r} is not a JAX "
                             "loss (fc.Loss.from_jax, fc.nn.mlp)")
        self.warm, self.previous, self.hvps, self.calls = bool(warm), None, 0, 0

    def __call__(self, theta, k):
        """(eigenvalues descending — all of them, or the top k —, eigenvectors [D, k])."""
        self.calls += 1
        if not self.matrix_free or k + BLOCK_EXTRA >= self.loss.dim:
            lam, V = np.linalg.eigh(self.loss.hess(theta))
            return lam[::-1], V[:, ::-1][:, :k]
        th = np.asarray(theta, float)

        def hv(V):
            self.hvps += V.shape[1]
            return fc.nn.hvp(self.loss, th, V.T).T
        rng = np.random.default_rng(self.calls)
        start = rng.normal(size=(th.shape[-1], k + BLOCK_EXTRA))
        if self.warm and self.previous is not None:
            m = min(self.previous.shape[1], k + BLOCK_EXTRA)
            start[:, :m] = self.previous[:, :m]
        lam, U = top_by_blocks(hv, start, k)
        self.previous = U
        return lam[:k], U[:, :k]

    def count_above(self, theta, level):
        """How many eigenvalues of H(θ) are ≥ level (asking for 2, 4, 8 … top eigenvalues as needed)."""
        k = 2
        while True:
            lam = self(theta, min(k, self.loss.dim))[0]
            n = int(np.sum(lam >= level))
            if n < len(lam) or len(lam) >= self.loss.dim:
                return n
            k *= 2


def _orthonormal_against(Q, V):
    """V's columns made orthonormal to Q's and to each other (each normalised, then Gram–Schmidt
    twice); a column with no direction outside span Q beyond rounding is dropped."""
    V = V / np.maximum(np.linalg.norm(V, axis=0), 1e-300)
    for _ in range(2):
        V = V - Q @ (Q.T @ V)
    V, r = np.linalg.qr(V)
    return V[:, np.abs(np.diag(r)) > 1e-8]


def top_by_blocks(hv, start, k, tol=RESIDUAL_TOL, max_basis=MAX_BASIS, max_products=20_000):
    """The k largest eigenpairs (descending) of a symmetric operator given by ``hv(V [D, b]) → HV``,
    and the next ones the search found (b = ``start``'s columns ≥ k pairs in all).

    The basis Q grows by the Ritz residuals HU − UΛ of the top b Ritz pairs (span Q ∪ residuals =
    span Q ∪ HQ: a block Krylov space from ``start``), Rayleigh–Ritz on QᵀHQ after each block, until
    the top k residuals are at most tol·|λ_max|; at ``max_basis`` columns it restarts from the top 2b
    Ritz vectors. Raises if ``max_products`` products do not get there."""
    b = start.shape[1]
    Q = _orthonormal_against(np.zeros((start.shape[0], 0)), start)
    W = hv(Q)
    products = Q.shape[1]
    while True:
        mu, Y = np.linalg.eigh(0.5 * (Q.T @ W + (Q.T @ W).T))
        top = np.argsort(mu)[::-1][:b]
        U, HU = Q @ Y[:, top], W @ Y[:, top]
        R = HU - U * mu[top]
        res = np.linalg.norm(R, axis=0)
        scale = max(np.abs(mu).max(), 1e-300)
        if np.all(res[:k] <= tol * scale):
            return mu[top], U
        if products > max_products:
            raise RuntimeError(f"the top {k} eigenpairs did not converge in {max_products} Hessian–vector products "
                               f"(largest residual {res.max() / scale:.1e} of |λ_max|)")
        if Q.shape[1] + b > max_basis:           # restart from the best 2k Ritz vectors
            keep = np.argsort(mu)[::-1][:min(2 * b, len(mu))]
            Q, W = Q @ Y[:, keep], W @ Y[:, keep]
        new = _orthonormal_against(Q, R[:, res > tol * scale])
        if new.shape[1] == 0:                    # the residuals lie in the basis: exact to rounding
            return mu[top], U
        Q, W = np.hstack([Q, new]), np.hstack([W, hv(new)])
        products += new.shape[1]


@dataclass
class CentralState:
    """The central flow's field at one point, with the quantities the paper reports."""
    velocity: np.ndarray       # dθ/dt [D]
    X: np.ndarray              # [k, k]
    U: np.ndarray              # [D, k] the critical eigenvectors
    eigenvalues: np.ndarray    # of H, descending
    residual: float            # of the cone problem


def central_field(loss, lr, theta, k, gamma=0.0, cone=None, eig=None):
    """The central flow's velocity at θ with the top ``k`` Hessian directions critical.

    ``gamma`` ≥ 0 adds a restoring rate: the critical block obeys d/dt UᵀHU ⪯ −γ(UᵀHU − 2/η)
    instead of ⪯ 0 (A_ab gains −(γ/η)(λ_a − 2/η)δ_ab), so that integration errors in the
    pinned eigenvalues decay instead of accumulating; γ = 0 is the paper's flow. ``cone``: the
    solver of the cone problem, (A, tau) -> (X, residual) (default :func:`cone_solve`). ``eig``: a
    :class:`TopEigenpairs` (default: a new one; matrix-free for a large JAX loss)."""
    theta = np.asarray(theta, float)
    g = loss.grad(theta)
    lam, U = (eig or TopEigenpairs(loss))(theta, max(k, 1))
    U = U[:, :k]
    tau = _third_pairs(loss, theta, U)
    A = np.einsum("abd,d->ab", tau, g) - (gamma / lr) * np.diag(lam[:k] - 2 / lr)
    # solved in A's eigenbasis (the same problem, rotated): the critical eigenvalues are pinned
    # together, so U is any basis of their span (from the block search: a random one), and a basis that
    # diagonalises A separates directions that do not interact (the cone solver crawled otherwise)
    _, Q = np.linalg.eigh(A) if k else (None, np.zeros((0, 0)))
    X, res = (cone or cone_solve)(Q.T @ A @ Q, np.einsum("ia,jb,ijd->abd", Q, Q, tau))
    X = Q @ X @ Q.T
    v = -lr * (g + 0.5 * np.einsum("ij,ijd->d", X, tau))
    return CentralState(v, X, U, lam, res)


@dataclass
class CentralFlow:
    """Result of :func:`central_flow`: at the output times t [T] (in GD steps)."""
    t: np.ndarray
    theta: np.ndarray          # [T, D]
    sigma: np.ndarray | None   # [T, D, D]  Σ = U X Uᵀ (None above MATRIX_FREE_DIM parameters: X and the U's)
    loss: np.ndarray           # [T]  E(θ(t))
    time_averaged_loss: np.ndarray   # [T]  E + ½⟨Σ, H⟩: the predicted average of GD's loss
    sharpness: np.ndarray      # [T]  λ_max(H(θ(t)))
    critical: np.ndarray       # [T]  k, the number of critical directions
    residual: np.ndarray       # [T]  of the cone problem
    events: list = field(default_factory=list)   # (t, 'enter' | 'leave', k after)
    lr: float = 0.0
    max_residual: float = 0.0  # the cone problem's largest residual over every field evaluation
    X: list = field(default_factory=list)        # [T] the k×k X at each output time
    hvps: int = 0              # Hessian–vector products taken (matrix-free only)

    def __repr__(self):
        return (f"CentralFlow(lr={self.lr:g}, t ∈ [{self.t[0]:g}, {self.t[-1]:g}], D={self.theta.shape[1]}, "
                f"{len(self.events)} events, max critical {int(self.critical.max())})")


def checked_start(loss, lr, theta0):
    """θ₀ as a flat float array, after checking the loss, the learning rate and θ₀'s length."""
    if not isinstance(loss, fc.Loss):
        raise TypeError(f"loss must be a flowcore.Loss, got {type(loss).__name__}")
    positive(lr, "lr")
    th = np.asarray(theta0, float).reshape(-1)
    if th.shape != (loss.dim,):
        raise ValueError(f"theta0 must have {loss.dim} coordinates, got {np.shape(theta0)}")
    return th


MAX_EVENTS = 100       # enter/leave events before a run stops (a chattering critical set)


def central_flow(loss, lr, theta0, t_max, t_eval=None, solver=CENTRAL_SOLVER, gamma=1.0, leave_tol=1e-6, cone=None,
                 matrix_free=None, progress=None):
    """Integrate the central flow of GD with learning rate ``lr`` from ``theta0`` to ``t_max`` (in
    GD steps), with scipy's DOP853 (``solver``: an fc.Dop853 value, whose rtol and atol it reads)
    and events (at most MAX_EVENTS).

    The critical set starts with the eigenvalues at 2/η (a start above 2/η is refused: GD is
    unstable there and the flow is not defined). A direction **enters** when its eigenvalue
    reaches 2/η from below and **leaves** when the critical eigenvalue it holds falls below
    2/η (1 − ``leave_tol``) (X has let it go); both are events of the integrator, which stops and
    restarts there with the new set. ``gamma``, ``cone``: see :func:`central_field` (γ = 1 per step
    keeps the pinned eigenvalues at 2/η to the integrator's tolerance). ``matrix_free``: the top
    eigenpairs by a warm-started block Krylov search on Hessian–vector products (:class:`TopEigenpairs`; None: for
    a JAX loss above MATRIX_FREE_DIM parameters), T[u_a, u_b] by JAX as always. ``progress``: a bar
    over the GD steps of time integrated (None: shown when the rest looks longer than a few seconds;
    on a network of 10⁵ parameters 100 GD steps take tens of minutes). Returns a :class:`CentralFlow`.
    """
    th = checked_start(loss, lr, theta0)
    if not (isinstance(solver, fc.Adaptive) and solver.name == "dop853"):
        raise TypeError(f"solver must be fc.Dop853(rtol=, atol=) (scipy's DOP853 runs the central flow), got {solver!r}")
    t_max = positive(t_max, "t_max")
    edge = 2.0 / lr
    eig = TopEigenpairs(loss, matrix_free)
    lam0 = eig(th, 1)[0]
    if lam0[0] > edge * (1 + 1e-9):
        raise ValueError(f"the sharpness at theta0 is {lam0[0]:.6g} > 2/lr = {edge:.6g}: the central flow starts at "
                         "or below the edge of stability")
    k = eig.count_above(th, edge * (1 - 1e-9))
    t_eval = np.linspace(0, t_max, 201) if t_eval is None else np.asarray(t_eval, float)
    worst = [0.0]                     # the cone problem's largest residual over every evaluation
    bar, reached = Progress(t_max, "central flow", "GD step", progress), [0.0]

    def reach(t):                     # the bar follows the furthest time the integrator has asked for
        if t > reached[0]:
            bar.update(t - reached[0])
            reached[0] = t
    try:
        t, theta, events = _integrate(loss, lr, th, k, t_max, t_eval, solver, gamma, leave_tol, cone, eig, worst,
                                      reach)
    finally:
        bar.close()
    out = _report(loss, lr, t, theta, events, gamma, cone, eig)
    out.max_residual, out.hvps = worst[0], eig.hvps
    return out


def _integrate(loss, lr, th, k, t_max, t_eval, solver, gamma, leave_tol, cone, eig, worst, reach):
    """The integration of :func:`central_flow`, restarted at each event: (t, θ(t), events)."""
    from scipy.integrate import solve_ivp
    edge = 2.0 / lr
    ts, ths, events, t0 = [], [], [], 0.0
    while True:
        def rhs(t, y, k=k):
            reach(t)
            st = central_field(loss, lr, y, k, gamma, cone, eig)
            worst[0] = max(worst[0], st.residual)
            return st.velocity

        def enter(t, y, k=k):
            lam = eig(y, k + 1)[0]
            return lam[k] - edge if k < min(len(lam), loss.dim) else -1.0
        enter.terminal, enter.direction = True, 1

        def leave(t, y, k=k):
            lam = eig(y, max(k, 1))[0]
            return lam[k - 1] - edge * (1 - leave_tol) if k > 0 else 1.0
        leave.terminal, leave.direction = True, -1

        sel = t_eval[(t_eval >= t0) & (t_eval <= t_max)]
        sol = solve_ivp(rhs, (t0, t_max), th, method="DOP853", t_eval=sel, events=(enter, leave),
                        rtol=solver.rtol, atol=solver.atol)
        if sol.status == -1:
            raise RuntimeError(f"central flow: the integrator failed at t = {sol.t[-1] if len(sol.t) else t0:g} "
                               f"({sol.message})")
        ts.append(np.asarray(sol.t, float))
        ths.append(np.asarray(sol.y, float).reshape(len(th), -1).T)     # none when no output time fell here
        if sol.status == 0 or len(events) >= MAX_EVENTS:
            break
        hit = 0 if len(sol.t_events[0]) else 1
        t0, th = float(sol.t_events[hit][0]), sol.y_events[hit][0]
        k += 1 if hit == 0 else -1
        events.append((t0, "enter" if hit == 0 else "leave", k))
    t = np.concatenate(ts)
    theta = np.concatenate(ths)
    _, first = np.unique(t, return_index=True)       # an output time at an event appears once
    return t[first], theta[first], events


def _report(loss, lr, t, theta, events, gamma, cone, eig):
    """The paper's quantities at the output times (the critical set as it was there). E + ½⟨Σ, H⟩ is
    E + ½ Σ_a X_aa λ_a (the u_a are H's eigenvectors); Σ itself is kept for D ≤ MATRIX_FREE_DIM."""
    edges = [e[0] for e in events]
    ks = [e[2] for e in events]
    k0 = eig.count_above(theta[0], (2 / lr) * (1 - 1e-9))
    D = theta.shape[1]
    keep_sigma = D <= MATRIX_FREE_DIM
    sigma = np.zeros((len(t), D, D)) if keep_sigma else None
    avg, sharp, crit, res = (np.zeros(len(t)) for _ in range(4))
    Xs = []
    E = loss.value(theta)
    for n, (tt, th) in enumerate(zip(t, theta)):
        j = np.searchsorted(edges, tt, side="right")
        k = ks[j - 1] if j else k0
        st = central_field(loss, lr, th, k, gamma, cone, eig)
        if keep_sigma:
            sigma[n] = st.U @ st.X @ st.U.T
        avg[n] = E[n] + 0.5 * float(np.sum(np.diag(st.X) * st.eigenvalues[:k])) if k else E[n]
        sharp[n], crit[n], res[n] = st.eigenvalues[0], k, st.residual
        Xs.append(st.X)
    return CentralFlow(t, theta, sigma, E, avg, sharp, crit.astype(int), res, list(events), float(lr), X=Xs)
