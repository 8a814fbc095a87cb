/* Minibatch SGD (with heavy-ball momentum) for one trajectory, and its entry points (host: OpenMP
 * across trajectories; CUDA: one thread each).
 *
 * Included after the per-example gradient, generated as fc_example_grad(x, row, g): ∇ℓ(θ; ξ) at
 * θ = x for the data row ξ = row [FC_P]. One step, with ĝ the mean of ∇ℓ over the batch:
 *
 *     v⁺ = β v − η ĝ(θ),   θ⁺ = θ + v⁺            (β = 0: plain SGD)
 *
 * The batches are batches.h's: with replacement B uniform indices a step, without a uniformly
 * random permutation per epoch (Fisher–Yates, n indices of scratch per trajectory). They come
 * from the trajectory's own Philox streams (random.h): independent of threads and batching.
 */
#ifndef FLOWCORE_SGD_H
#define FLOWCORE_SGD_H
#include "batches.h"

enum { FC_SG_BETA, FC_SG_RADIUS, FC_NSGR };
enum { FC_SG_STEPS, FC_SG_N, FC_SG_BATCH, FC_SG_REPLACE, FC_SG_NSAVE, FC_SG_K0, FC_SG_K1, FC_NSGI };

typedef struct {
    double beta, radius;
    fc_int64 steps, n, batch, replace, nsave;
    fc_u64 k0, k1;
    const fc_int64 *save;             /* [nsave] increasing step numbers to record */
    const double *data;               /* [n, FC_P] */
    const volatile int *interrupt;
} fc_sgd_args;

FC_FN fc_sgd_args fc_sgd_unpack(const double *r, const fc_int64 *n, const fc_int64 *save,
                                const double *data, const volatile int *interrupt)
{
    fc_sgd_args a;
    a.beta = r[FC_SG_BETA]; a.radius = r[FC_SG_RADIUS];
    a.steps = n[FC_SG_STEPS]; a.n = n[FC_SG_N]; a.batch = n[FC_SG_BATCH];
    a.replace = n[FC_SG_REPLACE]; a.nsave = n[FC_SG_NSAVE];
    a.k0 = (fc_u64)n[FC_SG_K0]; a.k1 = (fc_u64)n[FC_SG_K1];
    a.save = save; a.data = data; a.interrupt = interrupt;
    return a;
}

/* the mean gradient over step k's batch */
FC_FN void fc_batch_grad(const fc_sgd_args *a, fc_batches *b, fc_int64 k, const double *x, double *g)
{
    double gk[FC_D];
    for (int q = 0; q < FC_D; q++) g[q] = 0.0;
    for (fc_u64 j = 0; j < (fc_u64)a->batch; j++) {
        fc_example_grad(x, a->data + fc_example(b, (fc_u64)k, j) * FC_P, gk);
        for (int q = 0; q < FC_D; q++) g[q] += gk[q];
    }
    for (int q = 0; q < FC_D; q++) g[q] /= (double)a->batch;
}

/* one trajectory: out [nsave, D] (left as given after a stop), last [D]; returns its status.
   perm: n indices of scratch (without replacement; unused with) */
FC_FN int fc_sgd_run(const fc_sgd_args *a, fc_u64 id, double lr, const double *th0, double *out,
                     double *last, fc_int64 *nsteps, unsigned int *perm)
{
    double x[FC_D], v[FC_D], g[FC_D];
    for (int q = 0; q < FC_D; q++) { x[q] = th0[q]; v[q] = 0.0; }
    const double beta = a->beta, r2 = a->radius * a->radius;
    fc_int64 o = 0, next = a->nsave > 0 ? a->save[0] : -1, k = 0;
    int status = FC_OK;
    fc_batches b = fc_batches_at(a->k0, a->k1, id, (fc_u64)a->n, (fc_u64)a->batch, (int)a->replace, perm);
    fc_record(0, x, out, &o, &next, a->nsave, a->save);
    while (k < a->steps) {
        if ((k & 63) == 0 && a->interrupt && *a->interrupt) { status = FC_INTERRUPTED; break; }
        fc_batch_grad(a, &b, k, x, g);
        double norm2 = 0.0;
        for (int q = 0; q < FC_D; q++) {
            v[q] = beta * v[q] - lr * g[q];
            x[q] += v[q];
            norm2 += x[q] * x[q];
        }
        fc_record(++k, x, out, &o, &next, a->nsave, a->save);
        if (!(norm2 <= r2)) { status = fc_stop_status(x); break; }
    }
    *nsteps = k;
    for (int q = 0; q < FC_D; q++) last[q] = x[q];
    return status;
}

#ifdef FC_CUDA
extern "C" __global__ void fc_sgd_gpu(const double *r, const fc_int64 *n_args, const fc_int64 *save,
                                      const double *data, fc_int64 N, const fc_int64 *ids,
                                      const double *lr, const double *th0, double *out, double *last,
                                      int *status, fc_int64 *nsteps, unsigned int *perm)
{
    const fc_int64 i = (fc_int64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const fc_sgd_args a = fc_sgd_unpack(r, n_args, save, data, 0);
    status[i] = fc_sgd_run(&a, (fc_u64)ids[i], lr[i], th0 + i * FC_D, out + i * a.nsave * FC_D,
                           last + i * FC_D, nsteps + i, a.replace ? 0 : perm + i * a.n);
}
#else
#ifdef _OPENMP
#include <omp.h>
#endif
/* perm: [threads, n] scratch, a row per thread (without replacement; unused with) */
int fc_sgd_host(const double *r, const fc_int64 *n_args, const fc_int64 *save,
                const volatile int *interrupt, const double *data, fc_int64 N, const fc_int64 *ids,
                const double *lr, const double *th0, double *out, double *last, int *status,
                fc_int64 *nsteps, unsigned int *perm, int threads)
{
    const fc_sgd_args a = fc_sgd_unpack(r, n_args, save, data, interrupt);
    (void)threads;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads) if (threads > 1)
    for (fc_int64 i = 0; i < N; i++) {
#ifdef _OPENMP
        unsigned int *mine = a.replace ? 0 : perm + (fc_int64)omp_get_thread_num() * a.n;
#else
        unsigned int *mine = a.replace ? 0 : perm;
#endif
        status[i] = fc_sgd_run(&a, (fc_u64)ids[i], lr[i], th0 + i * FC_D, out + i * a.nsave * FC_D,
                               last + i * FC_D, nsteps + i, mine);
    }
    return 0;
}
#endif

#endif
