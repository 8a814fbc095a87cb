"""Shared helpers for flowcore benchmarks: median-of-repeats timing, tables, JSON."""
import ctypes
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


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


def compile_c(source, name, openmp=False):
    """Compile a plain-C reference with the system compiler (cc -O3, with -fopenmp when asked)
    and load it with ctypes."""
    tmp = Path(tempfile.mkdtemp())
    (tmp / f"{name}.c").write_text(source)
    omp = ["-fopenmp"] if openmp else []
    subprocess.run(["cc", "-O3", *omp, "-shared", "-fPIC", "-o", str(tmp / f"{name}.so"), str(tmp / f"{name}.c"), "-lm"],
                   check=True)
    return ctypes.CDLL(str(tmp / f"{name}.so"))
