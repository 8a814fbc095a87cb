"""The GPU part: flowcore's kernels on a CUDA GPU against hand-written CUDA and diffrax, in one run.

Problems (float64 throughout):
  (a) IGR on the double well, dopri5, rtol 1e-8, atol 1e-10, t in [0, 2], 10^6 starts
  (b) Lorenz via Field.from_expr, dopri5, rtol 1e-8, atol 1e-10, t in [0, 1], 10^6 starts
  (c) GD basins of the double well, h = 0.1, 1000², fa.basins' rest test (periods ≤ 16 held 50 steps)
  (d) PF basins of the double well, h = 0.2, 1000², rk4 dt = 0.02 to T = 20, rest test 1e-8 × 8 steps
  (e) GD recorded (fc.descend: every iterate kept), double well, h = 0.1, 10^5 starts × 1000 steps,
      the iterates copied to the host (1.6 GB) — the path of fa.orbit_diagram

Contenders: flowcore with device='gpu' (kernel compile reported apart), a hand CUDA kernel written
here (one thread per trajectory: the same controller / rest test / branch rule, the PF using that H
is diagonal on this loss), diffrax + jax.vmap on the same GPU when installed (jit, compile
excluded; (a), (b)), and flowcore on the CPU with all cores. Medians of repeats.

    python benchmarks/bench_gpu.py [--quick] [--starts N]      (or: flowcore bench --device gpu)

Without a usable GPU (CuPy and a CUDA device) it says so and exits 0.
"""
import argparse
import time

import numpy as np

import flowcore as fc
from flowcore.engine import _kernels
from _common import GD_REST, median_time, table, write_json

RTOL, ATOL = 1e-8, 1e-10

HAND = r"""
#include <cuda/std/complex>
typedef cuda::std::complex<double> zc;
/* (a) IGR on (x^2-1)^2 + y^2, dopri5 with flowcore's controller (as bench_solve's plain C) */
__device__ void igr_f(double h, const double *y, double *o) {
    double x = y[0], v = y[1], gx = 4*x*(x*x-1), gy = 2*v, hxx = 12*x*x-4;
    o[0] = -gx - 0.5*h*hxx*gx; o[1] = -gy - 0.5*h*2*gy;
}
__constant__ double A[7][6] = {{0},{1.0/5},{3.0/40,9.0/40},{44.0/45,-56.0/15,32.0/9},
 {19372.0/6561,-25360.0/2187,64448.0/6561,-212.0/729},
 {9017.0/3168,-355.0/33,46732.0/5247,49.0/176,-5103.0/18656},
 {35.0/384,0,500.0/1113,125.0/192,-2187.0/6784,11.0/84}};
__constant__ double E[7] = {-71.0/57600,0,71.0/16695,-71.0/1920,17253.0/339200,-22.0/525,1.0/40};
extern "C" __global__ void igr(long long n, const double *y0, double T, double lr, double rtol,
                               double atol, double *out) {
    long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (p >= n) return;
    double y[2] = {y0[2*p], y0[2*p+1]}, K[7][2], yt[2], t = 0, errold = 1e-4, h;
    int rej = 0;
    igr_f(lr, y, K[0]);
    { double d0 = 0, d1 = 0;
      for (int a = 0; a < 2; a++) { double sc = atol + rtol*fabs(y[a]);
        d0 += (y[a]/sc)*(y[a]/sc); d1 += (K[0][a]/sc)*(K[0][a]/sc); }
      d0 = sqrt(d0/2); d1 = sqrt(d1/2);
      h = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01*d0/d1; }
    while (t < T) {
        double hh = t + h*(1+1e-9) < T ? h : T - t;
        for (int s = 1; s < 7; s++) {
            for (int a = 0; a < 2; a++) { double acc = 0;
                for (int j = 0; j < s; j++) acc += A[s][j]*K[j][a];
                yt[a] = y[a] + hh*acc; }
            igr_f(lr, yt, K[s]);
        }
        double e = 0;
        for (int a = 0; a < 2; a++) { double acc = 0;
            for (int j = 0; j < 7; j++) acc += E[j]*K[j][a];
            double sc = atol + rtol*fmax(fabs(y[a]), fabs(yt[a]));
            e += (hh*acc/sc)*(hh*acc/sc); }
        e = sqrt(e/2);
        if (!(e <= 1)) { h = hh*fmax(0.2, 0.9*pow(e, -0.17)); rej = 1; continue; }
        double fac = e == 0 ? 10 : 0.9*pow(e, -0.17)*pow(errold, 0.04);
        fac = fmin(rej ? 1 : 10, fmax(0.2, fac)); errold = fmax(e, 1e-4); rej = 0;
        if (hh == h || fac < 1) h = hh*fac;
        t = hh == T - t ? T : t + hh;
        y[0] = yt[0]; y[1] = yt[1]; K[0][0] = K[6][0]; K[0][1] = K[6][1];
    }
    out[2*p] = y[0]; out[2*p+1] = y[1];
}
#define FN __device__
""" + GD_REST + r"""
/* (c) GD with fa.basins' whole rest test (_common.GD_REST, bench_basins.py's plain C); out: the
   last iterate (no cycles at h = 0.1 on this loss, so flowcore's cycle representative and the
   last iterate are the same point) */
extern "C" __global__ void gd(long long n, const double *th, double h, int steps, int confirm,
                              double tol, double R, double *out) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= n) return;
    double cur[2] = {th[2*i], th[2*i+1]};
    gd_rest(cur, h, steps, confirm, tol, R);
    out[2*i] = cur[0]; out[2*i+1] = cur[1];
}
/* (e) GD with every iterate stored step-major, X [steps + 1, n, 2] (filled with NaN beforehand) */
extern "C" __global__ void gd_record(long long n, const double *th, double h, int steps, double R,
                                     double *X) {
    long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (p >= n) return;
    double x = th[2*p], y = th[2*p+1];
    X[2*p] = x; X[2*p+1] = y;
    for (long long k = 1; k <= steps; k++) {
        x -= h * 4 * x * (x*x - 1); y -= h * 2 * y;
        X[2*(k*n + p)] = x; X[2*(k*n + p) + 1] = y;
        if (!(x*x + y*y <= R*R)) break;
    }
}
/* (d) PF with H diagonal: the x-direction's log continued along the path */
__device__ zc log1m_near(zc z, zc prev) {
    zc w = 1.0 - z;
    if (w.imag() == 0) w = zc(w.real(), 0.0);
    zc L = cuda::std::log(w);
    return L + zc(0, 2 * 3.141592653589793 * round((prev.imag() - L.imag()) / (2 * 3.141592653589793)));
}
__device__ void pf(double h, zc x, zc y, zc prev, zc *fx, zc *fy, zc *L) {
    zc z = h * (12.0 * x * x - 4.0);
    *L = log1m_near(z, prev);
    zc ax = cuda::std::abs(z) < 1e-8 ? -1.0 - z / 2.0 : *L / z;
    *fx = ax * 4.0 * x * (x * x - 1.0);
    *fy = (log(1 - 2*h) / (2*h)) * 2.0 * y;
}
extern "C" __global__ void pf_rk4(long long n, const double *th, double h, double dt, int nsteps,
                                  double R, double rest_tol, zc *out) {
    long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (p >= n) return;
    zc x = th[2*p], y = th[2*p+1], k1x, k1y, k2x, k2y, k3x, k3y, k4x, k4y, L, Ls;
    zc z0 = h * (12.0 * x * x - 4.0);
    zc prev = z0.real() > 1 ? zc(0, 3.141592653589793) : zc(0, 0);
    int streak = 0;
    for (int k = 0; k < nsteps; k++) {
        pf(h, x, y, prev, &k1x, &k1y, &L);
        prev = L;
        if (k > 0) {
            streak = fmax(cuda::std::abs(k1x), cuda::std::abs(k1y))
                     <= rest_tol * (1 + fmax(cuda::std::abs(x), cuda::std::abs(y))) ? streak + 1 : 0;
            if (streak >= 8) break;
        }
        pf(h, x + 0.5*dt*k1x, y + 0.5*dt*k1y, prev, &k2x, &k2y, &Ls);
        pf(h, x + 0.5*dt*k2x, y + 0.5*dt*k2y, prev, &k3x, &k3y, &Ls);
        pf(h, x + dt*k3x, y + dt*k3y, prev, &k4x, &k4y, &Ls);
        x += dt/6*(k1x + 2.0*k2x + 2.0*k3x + k4x); y += dt/6*(k1y + 2.0*k2y + 2.0*k3y + k4y);
        if (!(sqrt((x*cuda::std::conj(x) + y*cuda::std::conj(y)).real()) <= R)) break;
    }
    out[2*p] = x; out[2*p+1] = y;
}
"""


GPU, CPU = fc.Compute(device="gpu"), fc.Compute(device="cpu")

def gpu_time(cupy, fn, repeats):
    """Median wall time of fn() with the device synchronised."""
    def run():
        fn()
        cupy.cuda.Device().synchronize()
    return median_time(run, repeats=repeats, min_time=0)


def diffrax_time(field_jax, y0, T, repeats):
    """diffrax Dopri5 + jax.vmap with a PI controller at (RTOL, ATOL); compile excluded."""
    try:
        import jax
        import diffrax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    term = diffrax.ODETerm(lambda t, y, args: field_jax(y))
    ctrl = diffrax.PIDController(rtol=RTOL, atol=ATOL)

    def one(y):
        return diffrax.diffeqsolve(term, diffrax.Dopri5(), 0.0, T, None, y, stepsize_controller=ctrl,
                                   max_steps=100_000).ys
    solve = jax.jit(jax.vmap(one))
    y = jax.device_put(y0)
    solve(y).block_until_ready()
    return median_time(lambda: solve(y).block_until_ready(), repeats=repeats, min_time=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^5 starts, 300², one repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--starts", type=int, help="starts of (a), (b) (the basins: the nearest square; "
                    "(e): a tenth), e.g. a few hundred for a dry run of the script")
    args = ap.parse_args(argv)
    try:
        _kernels.gpu_usable("gpu")
    except RuntimeError as why:
        print(f"bench_gpu: skipped: {why}")
        return 0
    import cupy
    repeats = 1 if args.quick else args.repeats
    n = args.starts or (100_000 if args.quick else 1_000_000)
    side = int(round(np.sqrt(args.starts))) if args.starts else 300 if args.quick else 1000
    rng = np.random.default_rng(0)
    hand = cupy.RawModule(code=HAND, options=tuple(_kernels.cuda_options()))
    dw = fc.losses.double_well()
    rows = []

    def row(label, starts, first, t_gpu, t_hand=None, t_diffrax=None, t_cpu=None, agree=None):
        rows.append({"problem": label, "starts": starts, "flowcore first call [s]": first,
                     "flowcore GPU [s]": t_gpu, "µs/start": 1e6 * t_gpu / starts,
                     "hand CUDA [s]": t_hand if t_hand is not None else "-",
                     "flowcore / hand": t_gpu / t_hand if t_hand else "-",
                     "diffrax [s]": t_diffrax if t_diffrax is not None else "not installed",
                     "× diffrax": t_diffrax / t_gpu if t_diffrax else "-",
                     "flowcore CPU [s]": t_cpu if t_cpu is not None else "-",
                     "max |GPU − reference|": agree if agree is not None else "-"})
        print(f"{label}: done", flush=True)

    # (a) IGR
    y0 = rng.uniform(-1.5, 1.5, (n, 2))
    flow = fc.flows.igr(dw, 0.1)
    kw = dict(t_span=(0, 2.0), method=fc.Dopri5(rtol=RTOL, atol=ATOL), progress=False)
    t0 = time.perf_counter()
    sol = fc.solve(flow, y0[:10], compute=GPU, **kw)
    first = time.perf_counter() - t0
    t_gpu = median_time(lambda: fc.solve(flow, y0, compute=GPU, **kw), repeats=repeats, min_time=0)
    d_y0, d_out = cupy.asarray(y0), cupy.empty((n, 2))
    igr = hand.get_function("igr")
    launch = lambda: igr(((n + 127) // 128,), (128,), (np.int64(n), d_y0, np.float64(2.0), np.float64(0.1),  # noqa: E731
                                                      np.float64(RTOL), np.float64(ATOL), d_out))
    t_hand = gpu_time(cupy, launch, repeats)
    sol = fc.solve(flow, y0, compute=GPU, **kw)
    agree = float(np.max(np.abs(sol.y[:, -1] - d_out.get())))

    def igr_jax(y):
        x, v = y[0], y[1]
        gx, gy = 4 * x * (x * x - 1), 2 * v
        import jax.numpy as jnp
        return jnp.stack([-gx - 0.05 * (12 * x * x - 4) * gx, -gy - 0.1 * gy])
    t_cpu = median_time(lambda: fc.solve(flow, y0, compute=CPU, **kw), repeats=1, min_time=0)
    row("(a) IGR double well, dopri5", n, first, t_gpu, t_hand, diffrax_time(igr_jax, y0, 2.0, repeats),
        t_cpu, agree)

    # (b) Lorenz
    lorenz = fc.Field.from_expr(["10*(y - x)", "x*(28 - z) - y", "x*y - 8*z/3"], vars=("x", "y", "z"))
    y3 = rng.uniform(-10, 10, (n, 3)) + [0, 0, 25]
    kw = dict(t_span=(0, 1.0), method=fc.Dopri5(rtol=RTOL, atol=ATOL), progress=False)
    t0 = time.perf_counter()
    fc.solve(lorenz, y3[:10], compute=GPU, **kw)
    first = time.perf_counter() - t0
    t_gpu = median_time(lambda: fc.solve(lorenz, y3, compute=GPU, **kw), repeats=repeats, min_time=0)

    def lorenz_jax(u):
        import jax.numpy as jnp
        return jnp.stack([10 * (u[1] - u[0]), u[0] * (28 - u[2]) - u[1], u[0] * u[1] - 8 * u[2] / 3])
    t_cpu = median_time(lambda: fc.solve(lorenz, y3, compute=CPU, **kw), repeats=1, min_time=0)
    row("(b) Lorenz, dopri5", n, first, t_gpu, None, diffrax_time(lorenz_jax, y3, 1.0, repeats), t_cpu)

    # (c) GD basins
    g = np.linspace(-2, 2, side)
    th = np.ascontiguousarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
    rest = dict(rest=fc.RestTest(steps=1000, tol=1e-10, confirm=50, escape_radius=1e12), progress=False)
    t0 = time.perf_counter()
    fc.descend_to_rest(dw, th[:10], fc.GD(0.1), compute=GPU, **rest)
    first = time.perf_counter() - t0
    t_gpu = median_time(lambda: fc.descend_to_rest(dw, th, fc.GD(0.1), compute=GPU, **rest), repeats=repeats, min_time=0)
    gd = hand.get_function("gd")
    d_th, d_out = cupy.asarray(th), cupy.empty(th.shape)
    N = len(th)
    t_hand = gpu_time(cupy, lambda: gd(((N + 127) // 128,), (128,), (np.int64(N), d_th, np.float64(0.1), np.int32(1000),
                                                                       np.int32(50), np.float64(1e-10), np.float64(1e12), d_out)),
                      repeats)
    t_cpu = median_time(lambda: fc.descend_to_rest(dw, th, fc.GD(0.1), compute=CPU, **rest), repeats=1, min_time=0)
    r = fc.descend_to_rest(dw, th, fc.GD(0.1), compute=GPU, **rest)
    row(f"(c) GD basins {side}², h = 0.1", N, first, t_gpu, t_hand, None, t_cpu,
        float(np.max(np.abs(r.final - d_out.get()))))

    # (d) PF basins (the solve kernel with fa.basins' rest test)
    from flowcore.analysis.basins import REST_FRACTION
    pf = fc.flows.pf(dw, 0.2)
    kw = dict(t_span=(0, 20.0), method=fc.RK4(0.02), escape_radius=1e6, rest_tol=REST_FRACTION * 1e-5,
              progress=False)
    t0 = time.perf_counter()
    fc.solve(pf, th[:10], compute=GPU, **kw)
    first = time.perf_counter() - t0
    t_gpu = median_time(lambda: fc.solve(pf, th, compute=GPU, **kw), repeats=repeats, min_time=0)
    pfk = hand.get_function("pf_rk4")
    d_z = cupy.empty(th.shape, dtype=cupy.complex128)
    t_hand = gpu_time(cupy, lambda: pfk(((N + 127) // 128,), (128,), (np.int64(N), d_th, np.float64(0.2), np.float64(0.02),
                                                                       np.int32(1000), np.float64(1e6),
                                                                       np.float64(REST_FRACTION * 1e-5), d_z)),
                      repeats)
    sol = fc.solve(pf, th, compute=GPU, **kw)
    ok = sol.status == 0
    row(f"(d) PF basins {side}², rk4", N, first, t_gpu, t_hand, None, None,
        float(np.max(np.abs(sol.y[ok, -1] - d_z.get()[ok]))))

    # (e) GD recorded: both sides fill, run, transpose to [n, steps + 1, 2] on the GPU and copy back
    ne, steps = n // 10, 1000
    th_e = np.ascontiguousarray(th[:ne] if ne <= len(th) else rng.uniform(-2, 2, (ne, 2)))
    t0 = time.perf_counter()
    fc.descend(dw, th_e[:10], fc.GD(0.1), steps, compute=GPU)
    first = time.perf_counter() - t0
    t_gpu = median_time(lambda: fc.descend(dw, th_e, fc.GD(0.1), steps, compute=GPU), repeats=repeats, min_time=0)
    rec = hand.get_function("gd_record")
    d_th = cupy.asarray(th_e)

    def hand_record():
        X = cupy.full((steps + 1, ne, 2), np.nan)
        rec(((ne + 127) // 128,), (128,), (np.int64(ne), d_th, np.float64(0.1), np.int32(steps),
                                           np.float64(1e12), X))
        return cupy.ascontiguousarray(X.transpose(1, 0, 2)).get()
    t_hand = median_time(hand_record, repeats=repeats, min_time=0)
    t_cpu = median_time(lambda: fc.descend(dw, th_e, fc.GD(0.1), steps, compute=CPU), repeats=1, min_time=0)
    run = fc.descend(dw, th_e, fc.GD(0.1), steps, compute=GPU)
    row(f"(e) GD recorded, {steps} steps", ne, first, t_gpu, t_hand, None, t_cpu,
        float(np.nanmax(np.abs(run.iterates - hand_record()))))

    cols = list(rows[0])
    print(table(rows, cols))
    print("JSON:", write_json("gpu", rows, repeats=repeats, quick=args.quick,
                              device=cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
