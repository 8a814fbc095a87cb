"""Loss-evaluation throughput: points per second for E, g, H on a batch.

Compares, in one run on the same machine: the built-in C loss, the same loss
compiled from a sympy expression, the Python-callable fallback, and a
numpy-vectorised evaluation of the same closed forms (the baseline a user
would write).  Reports medians of repeats.

    python benchmarks/bench_losses.py [--n 100000] [--quick]
"""
import argparse

import numpy as np

import flowcore as fc
from _common import median_time, table, write_json


def numpy_double_well(th):
    x, y = th[:, 0], th[:, 1]
    r = x * x - 1
    E = r * r + y * y
    g = np.stack([4 * x * r, 2 * y], -1)
    H = np.zeros((len(th), 2, 2))
    H[:, 0, 0] = 12 * x * x - 4
    H[:, 1, 1] = 2
    return E, g, H


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="points per batch")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller batch")
    args = ap.parse_args(argv)
    n = 10_000 if args.quick else args.n
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    th = rng.uniform(-2, 2, (n, 2))
    thz = th + 1j * rng.uniform(-1, 1, (n, 2))

    zoo = fc.losses.double_well()
    compiled = fc.Loss.from_expr("(x**2 - 1)**2 + y**2")
    python_vec = fc.Loss.from_callable(
        lambda T: numpy_double_well(T)[0], lambda T: numpy_double_well(T)[1],
        lambda T: numpy_double_well(T)[2], dim=2, vectorized=True)
    n_small = max(n // 100, 100)                    # the per-point fallback is slow: time fewer
    python_pt = fc.Loss.from_callable(
        lambda t: numpy_double_well(t[None])[0][0], lambda t: numpy_double_well(t[None])[1][0],
        lambda t: numpy_double_well(t[None])[2][0], dim=2)

    cases = [
        ("numpy vectorised (baseline)", lambda X: numpy_double_well(X), th, n),
        ("zoo C, real", lambda X: zoo.evaluate(X, hess=True), th, n),
        ("zoo C, complex", lambda X: zoo.evaluate(X, hess=True), thz, n),
        ("sympy-compiled C, real", lambda X: compiled.evaluate(X, hess=True), th, n),
        ("sympy-compiled C, complex", lambda X: compiled.evaluate(X, hess=True), thz, n),
        ("Python fallback, vectorised", lambda X: python_vec.evaluate(X, hess=True), th, n),
        ("Python fallback, per point", lambda X: python_pt.evaluate(X, hess=True), th[:n_small], n_small),
    ]
    rows = []
    base = None
    for label, fn, X, m in cases:
        t = median_time(lambda: fn(X), repeats=repeats)
        pps = m / t
        base = base or pps
        rows.append({"evaluation (E, g, H) of double well": label, "points": m,
                     "points/s": pps, "vs numpy": pps / base})
    cols = ["evaluation (E, g, H) of double well", "points", "points/s", "vs numpy"]
    print(table(rows, cols))
    print("JSON:", write_json("losses", rows, n=n, repeats=repeats))


if __name__ == "__main__":
    main()
