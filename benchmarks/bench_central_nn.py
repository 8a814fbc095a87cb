"""The matrix-free central flow on a network of 10⁵ parameters, against the same algorithm written
directly in JAX.

Network: the digits MLP 64→256→256→10 (tanh, squared error on one-hot targets, D = 85 002; with
cross-entropy its sharpness falls under GD instead of rising). GD at WARMUP_LR = 0.05 for START =
300 steps sharpens it progressively (λ_max 36 at step 10, 40.3 at step 300); from there the central
flow of GD at η = 2/EDGE (EDGE = 41, just above the sharpness) runs for T GD steps of time: it
sharpens up to 2/η, a direction enters the critical set, and the flow continues at the edge.

- flowcore: ``fa.central_flow(net.loss, η, θ, t_max=T, solver=fc.Dop853(rtol, atol))``: the top
  eigenpairs by its warm-started block Krylov search on Hessian–vector products, τ_ab = T[u_a, u_b]
  by JAX, the k×k cone problem by flowcore's solver, enter/leave events.
- JAX only (written here): the same ODE, events and integrator (scipy's DOP853 at the same rtol and
  atol), its field in jitted JAX: the top k + 2 eigenpairs by ``jax.experimental.sparse.linalg.
  lobpcg_standard`` warm-started from the previous call's vectors (residual tolerance set to
  flowcore's, ‖Hu − λu‖ ≤ 1e-11 λ_max), τ_ab = ∇(u_aᵀ H u_b) by nested JVPs for the k(k+1)/2 pairs
  (vmapped), the k×k cone problem by accelerated projected gradient on the PSD cone (jitted).

Reports each one's seconds, field evaluations and Hessian–vector products (flowcore) or LOBPCG
iterations (JAX), the events, and how far the two end points are apart (relative).

    python benchmarks/bench_central_nn.py [--quick] [--t-max T] [--edge 2/η] [--rtol R]
    # --quick: T = 5 on an MLP 64→32→32→10 (D = 3 466)
"""
import argparse
import time

import numpy as np

import flowcore as fc
from flowcore import analysis as fa
from _common import table, write_json

WARMUP_LR, START, EDGE, EXTRA = 0.05, 300, 41.0, 2


def reference(fn, lr, gamma=1.0):
    """The central flow's field written directly in JAX: θ -> velocity, with its own warm start."""
    import jax
    import jax.numpy as jnp
    from jax.experimental.sparse.linalg import lobpcg_standard
    g = jax.grad(fn)

    @jax.jit
    def top(th, X0, tol):
        _, lin = jax.linearize(g, th)
        lam, U, it = lobpcg_standard(lambda X: jax.vmap(lin, in_axes=1, out_axes=1)(X), X0, m=400, tol=tol)
        return lam, U, it

    def t_pair(th, u, v):                       # ∇_θ (uᵀ H(θ) v) by nested JVPs
        return jax.grad(lambda t: jax.jvp(lambda s: jax.jvp(fn, (s,), (u,))[1], (t,), (v,))[1])(th)

    @jax.jit
    def parts(th, Ua, Ub):
        return g(th), jax.vmap(t_pair, in_axes=(None, 1, 1))(th, Ua, Ub)

    @jax.jit
    def cone(A, M):
        """min_{X ⪰ 0} ⟨A, X⟩ + ¼‖Σ X_ij τ_ij‖² (M [k, k, D] = τ) by accelerated projected gradient."""
        G = jnp.einsum("abd,ijd->abij", M, M)
        L = jnp.linalg.norm(G.reshape(A.size, A.size), 2) / 2 + 1e-300

        def proj(X):
            w, V = jnp.linalg.eigh((X + X.T) / 2)
            return (V * jnp.maximum(w, 0)) @ V.T

        def body(c):
            X, Y, t, _, n = c
            Xn = proj(Y - (A + 0.5 * jnp.einsum("abij,ij->ab", G, Y)) / L)
            tn = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
            return Xn, Xn + (t - 1) / tn * (Xn - X), tn, jnp.abs(Xn - X).max(), n + 1

        def going(c):                           # until an iterate moves X by less than rounding
            return (c[3] > 1e-15 * (jnp.abs(c[0]).max() + 1e-300)) & (c[4] < 20000)
        X0 = jnp.zeros_like(A)
        return jax.lax.while_loop(going, body, (X0, X0, 1.0, jnp.inf, 0))[0]

    state = {"U": None, "iterations": 0, "calls": 0, "hvps": 0}

    def eig(th, k):
        b = k + EXTRA
        X0 = np.random.default_rng(state["calls"]).normal(size=(th.size, b))
        if state["U"] is not None:
            m = min(state["U"].shape[1], b)
            X0[:, :m] = state["U"][:, :m]
        tol = 1e-11 / (20 * th.size)            # LOBPCG's test ‖r‖ ≤ tol·10·n·(λ + ‖Hu‖) ≈ 20·tol·n·λ: 1e-11 λ
        lam, U, it = top(jnp.asarray(th), jnp.asarray(X0), tol)
        state["U"], state["calls"] = np.asarray(U), state["calls"] + 1
        state["iterations"] += int(it)
        state["hvps"] += (int(it) + 1) * b                  # a block product per iteration, and the start's
        return np.asarray(lam), np.asarray(U)

    def field(th, k):
        lam, U = eig(th, max(k, 1))
        if k == 0:
            return -lr * np.asarray(g(jnp.asarray(th))), lam
        ia, ib = np.triu_indices(k)
        gt, T = parts(jnp.asarray(th), jnp.asarray(U[:, ia]), jnp.asarray(U[:, ib]))
        tau = np.zeros((k, k, th.size))
        tau[ia, ib], tau[ib, ia] = np.asarray(T), np.asarray(T)
        gt = np.asarray(gt)
        A = np.einsum("abd,d->ab", tau, gt) - (gamma / lr) * np.diag(lam[:k] - 2 / lr)
        X = np.asarray(cone(jnp.asarray(A), jnp.asarray(tau)))
        return -lr * (gt + 0.5 * np.einsum("ij,ijd->d", X, tau)), lam
    return field, eig, state


def reference_flow(fn, lr, theta0, t_max, rtol, atol, leave_tol=1e-6):
    """The central flow integrated as flowcore does (DOP853, enter/leave events), with the JAX field."""
    from scipy.integrate import solve_ivp
    field, eig, state = reference(fn, lr)
    edge, th, t0, events = 2 / lr, np.asarray(theta0, float), 0.0, []
    k = int(np.sum(eig(th, 2)[0] >= edge * (1 - 1e-9)))
    nfev = 0
    while True:
        def rhs(t, y, k=k):
            return field(y, k)[0]

        def enter(t, y, k=k):
            return eig(y, k + 1)[0][k] - edge
        enter.terminal, enter.direction = True, 1

        def leave(t, y, k=k):
            return eig(y, max(k, 1))[0][k - 1] - edge * (1 - leave_tol) if k else 1.0
        leave.terminal, leave.direction = True, -1
        sol = solve_ivp(rhs, (t0, t_max), th, method="DOP853", events=(enter, leave), rtol=rtol, atol=atol)
        nfev += sol.nfev
        th = sol.y[:, -1]
        if sol.status != 1:
            break
        hit = 0 if len(sol.t_events[0]) else 1
        t0, th = float(sol.t_events[hit][0]), sol.y_events[hit][0]
        k += 1 if hit == 0 else -1
        events.append((round(t0, 4), "enter" if hit == 0 else "leave", k))
    return th, events, nfev, state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--t-max", type=float, default=None, help="GD steps of time (default 100; 5 with --quick)")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--edge", type=float, default=EDGE, help=f"2/η (default {EDGE:g}; the start's sharpness is 40.27)")
    args = ap.parse_args()
    eta = 2 / args.edge
    t_max = args.t_max or (5.0 if args.quick else 100.0)
    widths = (32, 32) if args.quick else (256, 256)
    net = fc.nn.mlp(*fc.nn.digits(), widths=widths, activation="tanh", loss="mse", seed=0)
    th = fc.descend(net.loss, net.theta0[None], fc.GD(WARMUP_LR), START).iterates[0, -1]
    lam0 = fc.nn.top_eigenpairs(net.loss, th, 1)[0][0]
    print(f"{net!r}, D = {net.dim}: η = {eta:.5g}, 2/η = {2 / eta:g}, sharpness at the start {lam0:.4g}; "
          f"the central flow for {t_max:g} GD steps, DOP853 rtol {args.rtol:g}", flush=True)
    solver = fc.Dop853(rtol=args.rtol, atol=1e-9)
    t = time.perf_counter()
    cf = fa.central_flow(net.loss, eta, th, t_max, t_eval=[0.0, t_max], solver=solver)
    t_fc = time.perf_counter() - t
    print(f"  flowcore: {t_fc:.1f} s, {cf.hvps} Hessian–vector products, events {cf.events}", flush=True)
    fn = net.loss.functions[0].__self__.fn
    t = time.perf_counter()
    end, events, nfev, state = reference_flow(fn, eta, th, t_max, args.rtol, 1e-9)
    t_ref = time.perf_counter() - t
    diff = float(np.linalg.norm(end - cf.theta[-1]) / np.linalg.norm(cf.theta[-1]))
    print(f"  JAX only: {t_ref:.1f} s, {state['hvps']} Hessian–vector products ({state['iterations']} LOBPCG iterations, {state['calls']} calls), "
          f"{nfev} field evaluations, events {events}", flush=True)
    rows = [{"implementation": "flowcore fa.central_flow", "seconds": t_fc, "hvps": cf.hvps, "events": len(cf.events)},
            {"implementation": "JAX only (LOBPCG, nested JVPs)", "seconds": t_ref, "hvps": state["hvps"],
             "events": len(events)}]
    print(table(rows, ["implementation", "seconds", "hvps", "events"]))
    print(f"flowcore / JAX-only time: {t_fc / t_ref:.2f}; end points differ by {diff:.1e} (relative)")
    print(f"wrote {write_json('central_nn', rows, dim=net.dim, eta=eta, t_max=t_max, rtol=args.rtol, ratio=t_fc / t_ref, difference=diff, flowcore_events=cf.events, jax_events=events, lobpcg_iterations=state['iterations'])}")


if __name__ == "__main__":
    main()
