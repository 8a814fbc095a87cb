"""The central flow: integration time per unit of GD time with flowcore's cone solver against the
same integration with the cone problem solved by cvxpy (Clarabel), as the paper's code does.

Loss: D = 100, E = Σ_{i<50} ½(x_i y_i − 1)² (each pair a valley whose sharpness x² + y² rises
along it), written as a vectorised Python loss with exact g, H and T[v, v] (Loss.from_expr would
compile a D = 100 expression for minutes). η = 0.25 (2/η = 8); the first 6 pairs start on the
way to an edge crossing (x = 2.8 − 0.003 i, y = 0), the others well below it: 6 directions enter
the critical set one after another, so the cone problems grow to k = 6 (21 unknowns).
Both runs: DOP853, rtol 1e-8, t ∈ [0, T] in GD steps. Reports seconds per unit of GD time, field
evaluations, the largest cone residual of each, and how far the two trajectories end apart.
cvxpy is not a dependency of flowcore: `pip install cvxpy` for this script (it says so and
skips otherwise).

    python benchmarks/bench_central.py [--quick]
"""
import argparse
import time

import numpy as np

import flowcore as fc
from flowcore import analysis as fa
from _common import table, write_json

PAIRS = 50


def valleys():
    """E = Σ ½(x_i y_i − 1)² on θ = (x_0, y_0, x_1, y_1, …), vectorised over a batch [n, 2m]."""
    def split(t):
        t = np.asarray(t)
        return t[..., 0::2], t[..., 1::2]

    def value(t):
        x, y = split(t)
        return 0.5 * np.sum((x * y - 1) ** 2, axis=-1)

    def grad(t):
        x, y = split(t)
        r = x * y - 1
        g = np.empty(np.shape(t), dtype=np.result_type(t, float))
        g[..., 0::2], g[..., 1::2] = r * y, r * x
        return g

    def hess(t):
        x, y = split(t)
        n, D = np.shape(t)[:-1], np.shape(t)[-1]
        H = np.zeros(n + (D, D), dtype=np.result_type(t, float))
        i = np.arange(0, D, 2)
        H[..., i, i], H[..., i + 1, i + 1] = y * y, x * x
        H[..., i, i + 1] = H[..., i + 1, i] = 2 * x * y - 1
        return H

    def third(t, v):
        x, y = split(t)
        a, b = split(np.broadcast_to(v, np.shape(t)))
        T = np.empty(np.shape(t), dtype=np.result_type(t, v, float))
        T[..., 0::2], T[..., 1::2] = 4 * y * a * b + 2 * x * b * b, 2 * y * a * a + 4 * x * a * b
        return T

    return fc.Loss.from_callable(value, grad, hess, third, dim=2 * PAIRS, vectorized=True, name="50 valleys")


def cvxpy_cone(A, tau):
    """The cone problem as the paper's code poses it: minimise ⟨A, X⟩ + ¼‖Σ X_ij τ_ij‖² over X ⪰ 0."""
    import cvxpy as cp
    k = A.shape[0]
    if k == 0:
        return np.zeros((0, 0)), 0.0
    X = cp.Variable((k, k), PSD=True)
    M = tau.reshape(k * k, -1).T                       # column (i, j) ↦ τ_ij, vec in row-major order
    obj = cp.trace(A @ X) + 0.25 * cp.sum_squares(M @ cp.vec(X, order="C"))
    cp.Problem(cp.Minimize(obj)).solve(solver=cp.CLARABEL)
    Xv = (X.value + X.value.T) / 2
    Z = A + 0.5 * np.einsum("abd,ijd,ij->ab", tau, tau, Xv)
    res = max(0.0, -np.linalg.eigvalsh(Xv)[0], -np.linalg.eigvalsh(Z)[0], np.max(np.abs(Xv @ Z)))
    return Xv, res / max(np.max(np.abs(A)), 1e-300)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        print("bench_central: cvxpy is not installed (pip install cvxpy); skipped")
        return
    loss, lr = valleys(), 0.25
    th0 = np.zeros(2 * PAIRS)
    th0[0::2] = np.r_[2.8 - 0.003 * np.arange(6), np.full(PAIRS - 6, 1.5)]
    th0[1::2] = np.r_[np.zeros(6), np.full(PAIRS - 6, 0.2)]
    T = 4.0 if args.quick else 12.0
    rows, ends = [], {}
    for name, cone in (("flowcore cone_solve", None), ("cvxpy + Clarabel", cvxpy_cone)):
        calls = [0]

        def counted(A, tau, cone=cone):
            calls[0] += 1
            return (cone or fa.cone_solve)(A, tau)
        t0 = time.perf_counter()
        r = fa.central_flow(loss, lr, th0, T, t_eval=[0.0, T], solver=fc.Dop853(rtol=1e-8, atol=1e-10), cone=counted)
        sec = time.perf_counter() - t0
        ends[name] = r.theta[-1]
        rows.append(dict(cone_solver=name, seconds=sec, seconds_per_gd_step=sec / T, cone_solves=calls[0],
                         max_k=int(max([e[2] for e in r.events] or [0])), max_residual=r.max_residual))
    for row in rows:
        row["vs_flowcore"] = row["seconds"] / rows[0]["seconds"]
    gap = float(np.max(np.abs(ends["flowcore cone_solve"] - ends["cvxpy + Clarabel"])))
    print(f"central flow, D = {2 * PAIRS}, η = {lr}, t ∈ [0, {T:g}] GD steps, DOP853 rtol 1e-8")
    print(table(rows, ["cone_solver", "seconds", "seconds_per_gd_step", "vs_flowcore", "cone_solves", "max_k",
                       "max_residual"]))
    print(f"\nend points apart by {gap:.2e} (max-norm)")
    path = write_json("bench_central", rows, D=2 * PAIRS, lr=lr, t_max=T, end_gap=gap, quick=args.quick)
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
