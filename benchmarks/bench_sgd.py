"""Monte-Carlo SGD and Euler–Maruyama throughput (trajectory-steps per second): flowcore's
compiled kernels against a numpy-vectorised loop and a plain C loop with the same generator.

The plain C loops (written here) use the Philox4x64-10 keying that flowcore documents (key =
seed, counter = (block, trajectory, purpose, 0)), so they must agree with flowcore bit for
bit; numpy uses its own Philox BitGenerator stream (statistically the same, not bitwise).

    python benchmarks/bench_sgd.py [--quick]
"""
import argparse

import numpy as np

import flowcore as fc
from _common import compile_c, median_time, table, write_json

PLAIN_C = r"""
#include <math.h>
#include <stdint.h>
typedef uint64_t u64;
static inline u64 mulhi(u64 a, u64 b) { return (u64)(((unsigned __int128)a * b) >> 64); }
static void philox(u64 c[4], u64 k0, u64 k1)
{
    for (int r = 0; r < 10; r++) {
        u64 a = 0xD2E7470EE14C6C93ULL * c[0], ah = mulhi(0xD2E7470EE14C6C93ULL, c[0]);
        u64 b = 0xCA5A826395121157ULL * c[2], bh = mulhi(0xCA5A826395121157ULL, c[2]);
        u64 n0 = bh ^ c[1] ^ k0, n2 = ah ^ c[3] ^ k1;
        c[0] = n0; c[1] = b; c[2] = n2; c[3] = a;
        k0 += 0x9E3779B97F4A7C15ULL; k1 += 0xBB67AE8584CAA73BULL;
    }
}
/* SGD on l(x; xi) = (x^2 - 1)^2/4 + xi x, batches of B drawn with replacement */
void sgd(long N, long steps, long B, long n, const double *xi, double lr, u64 k0, u64 k1, double *x)
{
    for (long i = 0; i < N; i++) {
        double v = x[i];
        u64 buf[4]; int used = 4; u64 block = 0;
        for (long k = 0; k < steps; k++) {
            double g = 0;
            for (long b = 0; b < B; b++) {
                if (used == 4) { buf[0] = block++; buf[1] = i; buf[2] = 1; buf[3] = 0; philox(buf, k0, k1); used = 0; }
                g += xi[mulhi(buf[used++], n)] + v * (v * v - 1.0);   /* as flowcore's generated code */
            }
            v -= lr * (g / B);
        }
        x[i] = v;
    }
}
/* the ziggurat on flowcore's tables X, F (passed in), drawing 64-bit words from Philox blocks */
typedef struct { u64 c[4], k0, k1, block, traj; int used; } stream;
static inline u64 next(stream *s)
{
    if (s->used == 4) {
        s->c[0] = s->block++; s->c[1] = s->traj; s->c[2] = 0; s->c[3] = 0;
        philox(s->c, s->k0, s->k1); s->used = 0;
    }
    return s->c[s->used++];
}
static double normal(stream *s, const double *X, const double *F)
{
    for (;;) {
        u64 b = next(s);
        int i = (int)(b & 0xff);
        double sign = (b & 0x100) ? -1.0 : 1.0, x = (double)(b >> 11) * 0x1.0p-53 * X[i];
        if (x < X[i + 1]) return sign * x;
        if (i == 0) {
            double t, y;
            do {
                t = -log(((double)(next(s) >> 11) + 1.0) * 0x1.0p-53) / X[1];
                y = -log(((double)(next(s) >> 11) + 1.0) * 0x1.0p-53);
            } while (2.0 * y < t * t);
            return sign * (X[1] + t);
        }
        if (F[i] + (double)(next(s) >> 11) * 0x1.0p-53 * (F[i + 1] - F[i]) < exp(-0.5 * x * x)) return sign * x;
    }
}
/* Euler-Maruyama on dX = -(X^3 - X) dt + sigma dW */
void em(long N, long steps, double dt, double sigma, u64 k0, u64 k1, const double *X, const double *F, double *x)
{
    for (long i = 0; i < N; i++) {
        double v = x[i];
        stream s = {{0}, k0, k1, 0, (u64)i, 4};
        for (long k = 0; k < steps; k++) {
            double dW = sqrt(dt) * normal(&s, X, F);
            v = sigma * dW - dt * v * (v * v - 1.0) + v;      /* as flowcore's generated code */
        }
        x[i] = v;
    }
}
"""


def numpy_sgd(x0, steps, B, xi, lr, seed):
    rng = np.random.Generator(np.random.Philox(seed))
    x = x0.copy()
    for _ in range(steps):
        idx = rng.integers(0, len(xi), size=(len(x), B))
        x -= lr * (x**3 - x + xi[idx].mean(axis=1))
    return x


def numpy_em(x0, steps, dt, sigma, seed):
    rng = np.random.Generator(np.random.Philox(seed))
    x = x0.copy()
    for _ in range(steps):
        x += -(x**3 - x) * dt + sigma * np.sqrt(dt) * rng.standard_normal(len(x))
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else 7
    N = 20_000 if args.quick else 100_000
    steps = 100 if args.quick else 500
    seed, lr, B, sigma, dt = 7, 0.05, 4, 0.6, 0.01
    xi = np.random.default_rng(0).normal(size=200)
    xi -= xi.mean()
    data = fc.DataLoss.from_expr("(x**2 - 1)**2/4 + xi*x", {"xi": xi}, vars=("x",))
    sde = fc.SDE(fc.Loss.from_expr("(x**2 - 1)**2/4"), sigma)
    x0 = np.random.default_rng(1).uniform(-2, 2, N)
    lib = compile_c(PLAIN_C, "bench_sgd_plain")
    import ctypes
    lib.sgd.argtypes = [ctypes.c_long] * 4 + [ctypes.c_void_p, ctypes.c_double, ctypes.c_uint64, ctypes.c_uint64,
                                              ctypes.c_void_p]
    lib.em.argtypes = [ctypes.c_long] * 2 + [ctypes.c_double] * 2 + [ctypes.c_uint64] * 2 + [ctypes.c_void_p] * 3
    from flowcore.engine._stochastic import ziggurat_tables
    X, F = ziggurat_tables()

    def c_sgd():
        x = x0.copy()
        lib.sgd(N, steps, B, len(xi), xi.ctypes.data, lr, seed, 0, x.ctypes.data)
        return x

    def c_em():
        x = x0.copy()
        lib.em(N, steps, dt, sigma, seed, 0, X.ctypes.data, F.ctypes.data, x.ctypes.data)
        return x

    def fc_sgd(threads):
        return fc.descend(data, x0[:, None], fc.SGD(lr, batch=B, seed=seed, every=steps), steps, compute=fc.Compute(threads=threads)).final[:, 0]

    def fc_em(threads):
        return fc.sde_solve(sde, x0[:, None], (0, steps * dt), fc.EulerMaruyama(dt), t_eval=[steps * dt], seed=seed, compute=fc.Compute(threads=threads)).last[:, 0]

    rows = []
    for label, ours, plain, ref in (
            (f"SGD, B = {B}, n = {len(xi)} (1-D double well + noise)", fc_sgd, c_sgd,
             lambda: numpy_sgd(x0, steps, B, xi, lr, seed)),
            ("Euler–Maruyama, dX = −(X³ − X)dt + σ dW", fc_em, c_em, lambda: numpy_em(x0, steps, dt, sigma, seed))):
        same = bool(np.array_equal(ours(1), plain()))
        t1 = median_time(lambda: ours(1), repeats=repeats)
        t2 = median_time(lambda: ours(2), repeats=repeats)
        tc = median_time(plain, repeats=repeats)
        tn = median_time(ref, repeats=max(1, repeats // 2))
        work = N * steps
        rows.append({"problem": label, "N × steps": f"{N} × {steps}", "flowcore 1 thr [steps/s]": work / t1,
                     "flowcore 2 thr [steps/s]": work / t2, "plain C [steps/s]": work / tc, "numpy [steps/s]": work / tn,
                     "× numpy (2 thr)": tn / t2, "flowcore 1 thr / C (time)": t1 / tc, "bitwise = C": same})
    cols = list(rows[0])
    print(table(rows, cols))
    print("JSON:", write_json("sgd", rows, repeats=repeats, N=N, steps=steps))


if __name__ == "__main__":
    main()
