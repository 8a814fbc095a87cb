"""First-call cost of the per-problem kernels: sympy derivatives, C generation and the compiler,
each in a fresh process with an empty cache, against the second call (cache hit) in that process.

    python benchmarks/bench_compile.py [--quick]
"""
import argparse
import json
import subprocess
import sys
import tempfile

from _common import table, write_json

CASES = {
    "IGR double well, dopri5": "fc.solve(fc.flows.igr(fc.losses.double_well(), 0.1), [[0.5, 0.5]], t_span=(0, 1))",
    "PF double well (tracked), dopri5": "fc.solve(fc.flows.pf(fc.losses.double_well(), 0.4), [[0.5, 0.5]], t_span=(0, 1))",
    "PF+NP3 Rosenbrock, dop853": "fc.solve(fc.flows.pf(fc.losses.rosenbrock(), 1e-3, nonprincipal=True), [[0.5, 0.5]], "
                                 "t_span=(0, 1), method='dop853')",
    "Lorenz (Field.from_expr), dopri5": "fc.solve(fc.Field.from_expr(['10*(y-x)', 'x*(28-z)-y', 'x*y-8*z/3'], "
                                        "vars=('x','y','z')), [[1.0, 1.0, 1.0]], t_span=(0, 1))",
    "GD to rest, double well": "fc.descend_to_rest(fc.losses.double_well(), [[0.5, 0.5]], fc.GD(0.1))",
}

PROBE = """
import time, flowcore as fc
t0 = time.perf_counter(); {call}; t1 = time.perf_counter(); {call}; t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="(the same: a handful of compiles)")
    ap.parse_args(argv)
    rows = []
    for label, call in CASES.items():
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run([sys.executable, "-c", PROBE.format(call=call)], capture_output=True, text=True,
                                 env={**__import__("os").environ, "FLOWCORE_CACHE": cache}, check=True, cwd=cache)
        first, second = map(float, out.stdout.split())
        rows.append({"problem": label, "first call [s]": first, "second call [s]": second})
    print(table(rows, list(rows[0])))
    print("JSON:", write_json("compile", rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
