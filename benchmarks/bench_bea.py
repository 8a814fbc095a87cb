"""Symbolic BEA timing: GD's modified equation to order n on a 2-D quartic polynomial loss,
and the B-series modified-equation coefficients of all trees up to order n.

    python benchmarks/bench_bea.py [--quick]
"""
import argparse
import time

import numpy as np

from flowcore.analysis import bseries, modified_equation
from _common import table, write_json


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    orders = [2, 4, 6] if args.quick else [2, 4, 6, 8]
    rows = []
    for n in orders:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            me = modified_equation("x**4/4 + x*y**2 + y**3/3", order=n)
            times.append(time.perf_counter() - t)
        size = sum(len(str(c)) for f in me.terms for c in f)
        rows.append({"GD order n (2-D quartic)": n, "median time [s]": float(np.median(times)),
                     "target [s]": 10.0 if n == 8 else "-", "size of terms (chars)": size})
    print(table(rows, list(rows[0])))
    trows = []
    for method in ("euler", "rk4"):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            b = bseries.modified_equation(method, orders[-1])
            times.append(time.perf_counter() - t)
            bseries.graft.cache_clear(), bseries.trees.cache_clear()
        trows.append({"B-series, all trees": f"{method}, order <= {orders[-1]}", "trees": len(b),
                      "median time [s]": float(np.median(times)), "target [s]": 10.0})
    print()
    print(table(trows, list(trows[0])))
    print("JSON:", write_json("bea", rows + trows))


if __name__ == "__main__":
    main()
