"""Field-evaluation throughput: flowcore's spectral kernel vs numpy/scipy on the same formulas.

The numpy baseline gets g and H from the same compiled loss (so only the flow's
linear algebra is compared) and then does what a user would write: batched
np.linalg.eig/eigh for the PF, einsum for IGR and the third-order flow.

    python benchmarks/bench_fields.py [--quick]
"""
import argparse

import numpy as np

import flowcore as fc
from _common import median_time, table, write_json


def numpy_pf(loss, h, th):
    g, H = loss.grad(th), loss.hess(th)
    if np.iscomplexobj(th):
        lam, V = np.linalg.eig(H)
        y = np.linalg.solve(V, g[..., None])[..., 0]
    else:
        lam, V = np.linalg.eigh(H)
        y = np.einsum("nab,na->nb", V, g)
    z = (h * lam).astype(complex)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(np.abs(z) > 1e-8, np.log(1 - z) / z, -1.0)
    return np.einsum("nab,nb->na", V, phi * y)


def numpy_igr(loss, h, th):
    g, H = loss.grad(th), loss.hess(th)
    return -g - h / 2 * np.einsum("nab,nb->na", H, g)


def numpy_third(loss, h, th):
    g, H = loss.grad(th), loss.hess(th)
    Hg = np.einsum("nab,nb->na", H, g)
    return -g - h / 2 * Hg - h * h * (np.einsum("nab,nb->na", H, Hg) / 3 + loss.third(th, g) / 12)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    repeats = 3 if args.quick else 7
    rows = []

    def case(label, flow, ref, th):
        got = flow(th)
        err = np.max(np.abs(got - ref(th)) / (1 + np.abs(ref(th))))
        t_fc = median_time(lambda: flow(th), repeats=repeats)
        t_np = median_time(lambda: ref(th), repeats=repeats)
        n = len(th)
        rows.append({"field": label, "N": n, "flowcore evals/s": n / t_fc, "numpy evals/s": n / t_np,
                     "speed-up": t_np / t_fc, "max rel diff": float(err)})

    n2 = 20_000 if args.quick else 200_000
    dw = fc.losses.double_well()
    th2 = rng.uniform(-1.5, 1.5, (n2, 2))
    h = 0.2                                             # hλ_max ≈ 1.6 at |x| = 1.5: complex logs
    case("PF, D=2 double well (closed form)", fc.flows.pf(dw, h), lambda t: numpy_pf(dw, h, t), th2)
    case("IGR, D=2 double well", fc.flows.igr(dw, h), lambda t: numpy_igr(dw, h, t), th2)
    case("third-order, D=2 double well", fc.flows.third_order(dw, h), lambda t: numpy_third(dw, h, t), th2)
    for D, n in ((10, n2 // 10), (50, n2 // 100)):
        Q, _ = np.linalg.qr(rng.normal(size=(D, D)))
        A = Q @ np.diag(rng.uniform(-1, 8, D)) @ Q.T
        quad = fc.losses.quadratic(A, rng.normal(size=D))
        thD = rng.normal(size=(n, D))
        case(f"PF, D={D} quadratic (LAPACK dsyevd)", fc.flows.pf(quad, h), lambda t: numpy_pf(quad, h, t), thD)
        thz = thD + 0.1j * rng.normal(size=(n, D))
        case(f"PF, D={D} quadratic, complex points (real H: dsyevd)", fc.flows.pf(quad, h),
             lambda t: numpy_pf(quad, h, t), thz)
    D = 10
    names = [f"x{i}" for i in range(D)]
    expr = " + ".join(f"{c:.3f}*x{i}**2 + x{i}**4/4" for i, c in enumerate(rng.uniform(0.5, 4, D)))
    expr += " + " + " + ".join(f"x{i}*x{i + 1}" for i in range(D - 1))
    quart = fc.Loss.from_expr(expr, vars=names)
    thc = rng.normal(size=(n2 // 10, D)) * 0.5 + 0.2j * rng.normal(size=(n2 // 10, D))
    case("PF, D=10 quartic, complex points (zgeev + zgesv)", fc.flows.pf(quart, h),
         lambda t: numpy_pf(quart, h, t), thc)
    cols = ["field", "N", "flowcore evals/s", "numpy evals/s", "speed-up", "max rel diff"]
    print(table(rows, cols))
    print("JSON:", write_json("fields", rows, repeats=repeats))


if __name__ == "__main__":
    main()
