/* Fixed-step SDE integration dθ = f(θ) dt + G(θ) dW for one trajectory, and its entry points
 * (host: OpenMP across trajectories; CUDA: one thread each).
 *
 * Followed by the generated step fc_sde_step(x, dt, z, signs, xnew, a), which draws its own
 * Gaussian increments from z (and, for the weak order-2 scheme, the two-point variables from
 * signs); see flowcore/_stochastic.py for the schemes. Each path reads its own Philox streams
 * (random.h): it does not depend on threads, batching or the device.
 */
#ifndef FLOWCORE_SDE_H
#define FLOWCORE_SDE_H
#include "normal.h"

enum { FC_SD_DT, FC_SD_RADIUS, FC_SD_SCALE, FC_NSDR };
enum { FC_SD_STEPS, FC_SD_NSAVE, FC_SD_K0, FC_SD_K1, FC_SD_N, FC_NSDI };

typedef struct {
    double dt, radius;
    double scale;                     /* data noise: the factor of Σ_k (∇ℓ_k − ∇E) ξ_k */
    fc_int64 steps, nsave, n;
    fc_u64 k0, k1;
    const fc_int64 *save;
    const double *data;               /* data noise: [n, FC_P]; else unused */
    const volatile int *interrupt;
} fc_sde_args;

FC_FN fc_sde_args fc_sde_unpack(const double *r, const fc_int64 *n, const fc_int64 *save,
                                const double *data, const volatile int *interrupt)
{
    fc_sde_args a;
    a.dt = r[FC_SD_DT]; a.radius = r[FC_SD_RADIUS]; a.scale = r[FC_SD_SCALE];
    a.steps = n[FC_SD_STEPS]; a.nsave = n[FC_SD_NSAVE]; a.n = n[FC_SD_N];
    a.k0 = (fc_u64)n[FC_SD_K0]; a.k1 = (fc_u64)n[FC_SD_K1];
    a.save = save; a.data = data; a.interrupt = interrupt;
    return a;
}

/* generated after this header: one step of the scheme (the loop tests the result) */
FC_FN void fc_sde_step(const double *x, double dt, fc_normals *z, fc_stream *signs, double *xnew,
                      const fc_sde_args *a);

FC_FN int fc_sde_run(const fc_sde_args *a, fc_u64 id, const double *x0, double *out, double *last,
                     fc_int64 *nsteps)
{
    double x[FC_D], xnew[FC_D];
    for (int q = 0; q < FC_D; q++) x[q] = x0[q];
    const double dt = a->dt, r2 = a->radius * a->radius;
    fc_int64 o = 0, next = a->nsave > 0 ? a->save[0] : -1, k = 0;
    int status = FC_OK;
    fc_normals z = fc_normals_at(a->k0, a->k1, id);
    fc_stream signs = fc_stream_at(a->k0, a->k1, id, FC_RNG_SIGN, 0);
    fc_record(0, x, out, &o, &next, a->nsave, a->save);
    while (k < a->steps) {
        if ((k & 63) == 0 && a->interrupt && *a->interrupt) { status = FC_INTERRUPTED; break; }
        fc_sde_step(x, dt, &z, &signs, xnew, a);
        double norm2 = 0.0;
        for (int q = 0; q < FC_D; q++) { x[q] = xnew[q]; norm2 += x[q] * x[q]; }
        fc_record(++k, x, out, &o, &next, a->nsave, a->save);
        if (!(norm2 <= r2)) { status = fc_stop_status(x); break; }
    }
    *nsteps = k;
    for (int q = 0; q < FC_D; q++) last[q] = x[q];
    return status;
}

#ifdef FC_CUDA
extern "C" __global__ void fc_sde_gpu(const double *r, const fc_int64 *n_args, const fc_int64 *save,
                                      const double *data, fc_int64 N, const fc_int64 *ids,
                                      const double *x0, double *out, double *last, int *status,
                                      fc_int64 *nsteps)
{
    const fc_int64 i = (fc_int64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const fc_sde_args a = fc_sde_unpack(r, n_args, save, data, 0);
    status[i] = fc_sde_run(&a, (fc_u64)ids[i], x0 + i * FC_D, out + i * a.nsave * FC_D,
                           last + i * FC_D, nsteps + i);
}
#else
int fc_sde_host(const double *r, const fc_int64 *n_args, const fc_int64 *save,
                const volatile int *interrupt, const double *data, fc_int64 N, const fc_int64 *ids,
                const double *x0, double *out, double *last, int *status, fc_int64 *nsteps,
                int threads)
{
    const fc_sde_args a = fc_sde_unpack(r, n_args, save, data, interrupt);
    (void)threads;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads) if (threads > 1)
    for (fc_int64 i = 0; i < N; i++)
        status[i] = fc_sde_run(&a, (fc_u64)ids[i], x0 + i * FC_D, out + i * a.nsave * FC_D,
                               last + i * FC_D, nsteps + i);
    return 0;
}
#endif

#endif
