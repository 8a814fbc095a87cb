"""Shared helpers for flowcore benchmarks: median-of-repeats timing, tables, JSON."""
import contextlib
import ctypes
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


# GD on the double well (x² − 1)² + y² with fa.basins' whole rest test, written once for the plain
# C loop (bench_basins.py) and the hand CUDA kernel (bench_gpu.py): prefix it with FN defined as
# `static inline` or `__device__`. Periods p <= 16 (p = 1 every step, all p every 16th step while
# no candidate holds), held `confirm` steps, reduced to the smallest recurring divisor, a cycle
# refused while its last p steps keep shrinking.
GD_REST = r"""
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))   /* finite arguments: a compare, not fmax's library call */
#endif
#define PMAX 16
#define KEEP (PMAX + 1)
#define SLOT(head, j) ((head) >= (j) ? (head) - (j) : (head) - (j) + KEEP)   /* (head - j) mod KEEP */
FN int recur2(const double *old, const double *cur, double tol) {
    double d = MAX(fabs(cur[0] - old[0]), fabs(cur[1] - old[1])), s = MAX(fabs(cur[0]), fabs(cur[1]));
    return d <= tol * (1 + s);
}
/* the length of the last p steps ending at cur (ring[(head - j) mod KEEP] = theta_{k+1-j}) */
FN double last_steps(double (*ring)[2], int head, const double *cur, int p) {
    double len = 0;
    const double *u = cur;
    for (int j = 1; j <= p; j++) {
        const double *v = ring[SLOT(head, j)];
        len += MAX(fabs(u[0] - v[0]), fabs(u[1] - v[1]));
        u = v;
    }
    return len;
}
/* one start: cur [2] in, the last iterate out; returns the period (1: a fixed point), 0 when it
   did not come to rest, -1 when it escaped */
FN int gd_rest(double *cur, double h, int steps, int confirm, double tol, double R) {
    double ring[KEEP][2], len0 = 0;
    int head = 0, cand = 0, streak = 0, period = 0;
    ring[0][0] = cur[0]; ring[0][1] = cur[1];
    for (int k = 0; k < steps && !period; k++) {
        const double x = cur[0], y = cur[1];
        cur[0] = x - h * 4 * x * (x*x - 1); cur[1] = y - h * 2 * y;
        if (!(cur[0]*cur[0] + cur[1]*cur[1] <= R*R)) return -1;
        head = head + 1 == KEEP ? 0 : head + 1;
        int p = 0;
        if (cand) p = recur2(ring[SLOT(head, cand)], cur, tol) ? cand : 0;
        else {
            const int top = k & (PMAX - 1) ? 1 : (k + 1 < PMAX ? k + 1 : PMAX);
            for (int q = 1; q <= top && !p; q++)
                if (recur2(ring[SLOT(head, q)], cur, tol)) p = q;
        }
        streak = p && p == cand ? streak + 1 : p > 0;
        cand = p;
        if (streak == 1 && p > 1) len0 = last_steps(ring, head, cur, p);
        if (streak >= confirm) {
            int d = 1;
            while (d < p && !(p % d == 0 && recur2(ring[SLOT(head, d)], cur, tol))) d++;
            const double scale = MAX(fabs(cur[0]), fabs(cur[1]));
            if (d > 1 && last_steps(ring, head, cur, p) < len0 - 2 * p * tol * (1 + scale)) streak = cand = 0;
            else period = d;
        }
        ring[head][0] = cur[0]; ring[head][1] = cur[1];
    }
    return period;
}
"""


def median_time(fn, repeats=7, min_time=0.05, warmup=True):
    """Median wall time of fn() over `repeats` runs; each run loops until min_time."""
    if warmup:
        fn()                                             # warm-up (JIT, caches, page faults)
    times = []
    for _ in range(repeats):
        loops, t0 = 0, time.perf_counter()
        while True:
            fn()
            loops += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        times.append(dt / loops)
    return float(np.median(times))


def paired_times(f, g, pairs=7, clock=time.process_time):
    """(median time of f, median time of g, median of the per-pair ratios f/g): f and g run back to
    back, pair after pair, so that a slow spell of a shared machine falls on both of a pair. The
    default clock is the process's CPU time: for single-threaded work it is the work's own time,
    which the shared machine's other jobs do not inflate by preempting it (wall time does)."""
    f(), g()                                             # warm-up
    tf, tg = [], []
    for _ in range(pairs):
        for fn, out in ((f, tf), (g, tg)):
            t0 = clock()
            fn()
            out.append(clock() - t0)
    tf, tg = np.array(tf), np.array(tg)
    return float(np.median(tf)), float(np.median(tg)), float(np.median(tf / tg))


def table(rows, columns):
    """A markdown table from a list of dicts."""
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c, "–")) for c in columns) + " |")
    return "\n".join(out)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def write_json(name, rows, **meta):
    RESULTS.mkdir(exist_ok=True)
    meta.update(machine=platform.machine(), python=platform.python_version(),
                date=time.strftime("%Y-%m-%d"))
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return path


@contextlib.contextmanager
def lanes_env(width):
    """$FLOWCORE_LANES = width inside the block (flowcore's lane kernels at that width), as before after."""
    old = os.environ.get("FLOWCORE_LANES")
    os.environ["FLOWCORE_LANES"] = str(width)
    try:
        yield
    finally:
        if old is None:
            del os.environ["FLOWCORE_LANES"]
        else:
            os.environ["FLOWCORE_LANES"] = old


def compile_c(source, name, openmp=False, native=False):
    """Compile a plain-C reference with the system compiler (cc -O3, with -fopenmp when asked;
    native: for this machine's vectors as flowcore's lane kernels are, with their flags
    (_codegen.native_flags, -ffp-contract=off, -fno-math-errno), `omp simd` honoured and glibc's
    vector math (libmvec) where flowcore's kernels find it: FC_MVEC defined, -lmvec) and load it
    with ctypes."""
    tmp = Path(tempfile.mkdtemp())
    (tmp / f"{name}.c").write_text(source)
    omp = ["-fopenmp"] if openmp else []
    libs = []
    if native:
        from flowcore.engine import _codegen
        defines, libs = _codegen.mvec_flags()
        arch = [*_codegen.native_flags(), "-ffp-contract=off", "-fno-math-errno", "-fopenmp-simd", *defines]
    else:
        arch = []
    subprocess.run(["cc", "-O3", *omp, *arch, "-shared", "-fPIC", "-o", str(tmp / f"{name}.so"), str(tmp / f"{name}.c"),
                    *libs, "-lm"], check=True)
    return ctypes.CDLL(str(tmp / f"{name}.so"))
