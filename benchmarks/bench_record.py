"""Recorded maps: fc.descend (every iterate kept; the path of fa.orbit_diagram) against plain C and
numpy, in one run.

GD, h = 0.1, on the double well E = (x² − 1)² + y², starts uniform in [−1.5, 1.5]², every iterate
kept, trajectory-major [N, steps + 1, 2] (NaN after a stop; none stops here):
  - flowcore on 1 and 2 threads (a block of FC_W starts a thread, maps.h fc_record_lanes), and on
    1 thread at FC_W = 1 (one start at a time, as the kernel was before lanes);
  - plain C written here, one start at a time, and 8 starts in lockstep (`omp simd` over the
    lanes, then each lane's store), both with the flags of flowcore's lane kernels;
  - the store bound: C writing the same array (fresh, as every contender's is) with no arithmetic;
  - numpy, the loop a user would write, vectorised over the starts.
Medians of repeats (wall time); every contender allocates its output afresh, so page faults count.

    python benchmarks/bench_record.py [--quick] [--repeats 5]
"""
import argparse
import ctypes

import numpy as np

import flowcore as fc
from _common import compile_c, lanes_env, median_time, table, write_json

H = 0.1
C_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#define R2 1e24
/* one start at a time; g = h∇E with ∇E = (4x(x² − 1), 2y) */
void record(int64_t n, int steps, const double *th, double h, double *X, int threads) {
    const int64_t row = (int64_t)(steps + 1) * 2;
    #pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < n; i++) {
        double x = th[2 * i], y = th[2 * i + 1], *o = X + i * row;
        int k = 0;
        o[0] = x; o[1] = y;
        for (; k < steps; k++) {
            x -= h * (4 * x * (x * x - 1));
            y -= h * (2 * y);
            o[2 * k + 2] = x; o[2 * k + 3] = y;
            if (!(x * x + y * y <= R2)) { k++; break; }
        }
        for (int64_t j = 2 * (int64_t)k + 2; j < row; j++) o[j] = NAN;
    }
}
/* 8 starts in lockstep: the step vectorised over the lanes, then each lane's store */
void record_lanes(int64_t n, int steps, const double *th, double h, double *X, int threads) {
    const int64_t row = (int64_t)(steps + 1) * 2, blocks = (n + 7) / 8;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t b = 0; b < blocks; b++) {
        double x[8], y[8];
        const int m = n - 8 * b < 8 ? (int)(n - 8 * b) : 8;
        for (int l = 0; l < 8; l++) {
            x[l] = l < m ? th[2 * (8 * b + l)] : 0; y[l] = l < m ? th[2 * (8 * b + l) + 1] : 0;
            if (l < m) { X[(8 * b + l) * row] = x[l]; X[(8 * b + l) * row + 1] = y[l]; }
        }
        for (int k = 0; k < steps; k++) {
            #pragma omp simd
            for (int l = 0; l < 8; l++) { x[l] -= h * (4 * x[l] * (x[l] * x[l] - 1)); y[l] -= h * (2 * y[l]); }
            for (int l = 0; l < m; l++) { double *o = X + (8 * b + l) * row + 2 * k + 2; o[0] = x[l]; o[1] = y[l]; }
        }
    }
}
/* the stores alone */
void fill(int64_t n, int steps, double *X, int threads) {
    const int64_t row = (int64_t)(steps + 1) * 2;
    #pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < row; j++) X[i * row + j] = (double)j;
}
"""


def c_library():
    lib = compile_c(C_SOURCE, "record", openmp=True, native=True)
    P = np.ctypeslib.ndpointer(np.float64, flags="C")
    L, I, D = ctypes.c_int64, ctypes.c_int, ctypes.c_double
    lib.record.argtypes = lib.record_lanes.argtypes = [L, I, P, D, P, I]
    lib.fill.argtypes = [L, I, P, I]
    return lib


def numpy_record(th, steps):
    X = np.empty((len(th), steps + 1, 2))
    X[:, 0] = cur = th
    for k in range(steps):
        x, y = cur[:, 0], cur[:, 1]
        cur = np.stack([x - H * (4 * x * (x * x - 1)), y - H * (2 * y)], 1)
        X[:, k + 1] = cur
    return X


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    lib, dw, rows = c_library(), fc.losses.double_well(), []
    sizes = [(200, 60)] if args.quick else [(2000, 600), (10_000, 500), (100_000, 100)]
    for n, steps in sizes:
        th = np.ascontiguousarray(np.random.default_rng(0).uniform(-1.5, 1.5, (n, 2)))

        def fc_run(threads):
            return fc.descend(dw, th, fc.GD(H), steps, compute=fc.Compute(device="cpu", threads=threads)).iterates

        def c_run(fn, threads=1):
            X = np.empty((n, steps + 1, 2))
            fn(n, steps, th, H, X, threads)
            return X

        def c_fill(threads=1):
            X = np.empty((n, steps + 1, 2))
            lib.fill(n, steps, X, threads)
            return X
        t = {"fc1": median_time(lambda: fc_run(1), repeats=repeats, min_time=0.02),
             "fc2": median_time(lambda: fc_run(2), repeats=repeats, min_time=0.02),
             "c": median_time(lambda: c_run(lib.record), repeats=repeats, min_time=0.02),
             "c_lanes": median_time(lambda: c_run(lib.record_lanes), repeats=repeats, min_time=0.02),
             "c_lanes2": median_time(lambda: c_run(lib.record_lanes, 2), repeats=repeats, min_time=0.02),
             "fill": median_time(c_fill, repeats=repeats, min_time=0.02),
             "numpy": median_time(lambda: numpy_record(th, steps), repeats=repeats, min_time=0.02)}
        with lanes_env(1):
            t["fc1_w1"] = median_time(lambda: fc_run(1), repeats=repeats, min_time=0.02)
        ref = fc_run(2)
        diff = max(float(np.max(np.abs(ref - c_run(lib.record)))), float(np.max(np.abs(ref - numpy_record(th, steps)))))
        rows.append({"starts × steps": f"{n} × {steps}", "flowcore 1 thr [s]": t["fc1"], "flowcore 2 thr [s]": t["fc2"],
                     "2-thread speed-up": t["fc1"] / t["fc2"], "flowcore W = 1, 1 thr [s]": t["fc1_w1"],
                     "lanes / W = 1": t["fc1_w1"] / t["fc1"], "plain C 1 thr [s]": t["c"],
                     "C 8 lanes 1 thr [s]": t["c_lanes"], "C lanes 2-thread speed-up": t["c_lanes"] / t["c_lanes2"],
                     "stores alone 1 thr [s]": t["fill"], "numpy [s]": t["numpy"],
                     "flowcore 1 thr / C lanes": t["fc1"] / t["c_lanes"], "× numpy (2 thr)": t["numpy"] / t["fc2"],
                     "ns per start-step (1 thr)": t["fc1"] / (n * steps) * 1e9, "max |diff| vs C, numpy": diff})
        print(f"{n} × {steps}: done", flush=True)
    cols = list(rows[0])
    print(table(rows, cols))
    print("JSON:", write_json("record", rows, repeats=repeats, quick=args.quick))


if __name__ == "__main__":
    main()
