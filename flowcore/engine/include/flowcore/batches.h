/* The examples of minibatch SGD's steps for one trajectory: sgd.h reads them one by one, and
 * SGD run elsewhere (networks, in JAX) reads the very same ones through fc_batches_host.
 *
 * With replacement: B indices a step, each uniform on [0, n), from the trajectory's index stream.
 * Without: epoch e (m = ⌊n/B⌋ steps) walks a uniformly random permutation π_e of [0, n); its
 * step j takes π_e(jB), …, π_e(jB + B − 1), and the n − mB examples left over differ from epoch
 * to epoch. π_e is a Fisher–Yates shuffle driven by the stream (trajectory, FC_RNG_EPOCH, e):
 * position i swaps with position i + u_i, u_i uniform on [0, n − i) (fc_below, exact), so every
 * ordering has probability 1/n!. The shuffle is lazy — a step fixes just its B positions — so a
 * step costs B draws, and each epoch restarts from the identity, so π_e depends on (seed,
 * trajectory, e) alone. It needs n indices of memory per trajectory (`perm`).
 */
#ifndef FLOWCORE_BATCHES_H
#define FLOWCORE_BATCHES_H
#include "random.h"

typedef struct {
    fc_stream s;             /* with replacement the index stream, without the epoch's */
    fc_u64 n, batch, per_epoch;
    int replace;
    unsigned int *perm;      /* [n] without replacement: the epoch's shuffle so far */
} fc_batches;

FC_FN fc_batches fc_batches_at(fc_u64 k0, fc_u64 k1, fc_u64 traj, fc_u64 n, fc_u64 batch, int replace,
                               unsigned int *perm)
{
    fc_batches b;
    b.s = fc_stream_at(k0, k1, traj, FC_RNG_INDEX, 0);
    b.n = n; b.batch = batch; b.per_epoch = n / batch; b.replace = replace; b.perm = perm;
    return b;
}

/* example q (0 ≤ q < B) of step k; called for k = 0, 1, 2, … and q = 0 … B − 1 in order */
FC_FN fc_u64 fc_example(fc_batches *b, fc_u64 k, fc_u64 q)
{
    if (b->replace) return fc_below(&b->s, b->n);
    const fc_u64 i = (k % b->per_epoch) * b->batch + q;
    if (i == 0) {                          /* an epoch begins: its own stream, from the identity */
        b->s = fc_stream_at(b->s.k0, b->s.k1, b->s.traj, FC_RNG_EPOCH, k / b->per_epoch);
        for (fc_u64 j = 0; j < b->n; j++) b->perm[j] = (unsigned int)j;
    }
    const fc_u64 r = i + fc_below(&b->s, b->n - i);
    const unsigned int pick = b->perm[r];
    b->perm[r] = b->perm[i];
    b->perm[i] = pick;
    return pick;
}

#ifndef FC_CUDA
/* The batches of steps [k_first, k_last) of N trajectories, out [N, k_last − k_first, B], for SGD
   that runs outside the kernels. state [N] and perm [N, n] carry each trajectory's place from
   one call to the next: fc_batches_start puts them at step 0. */
fc_int64 fc_batches_size(void) { return (fc_int64)sizeof(fc_batches); }

int fc_batches_start(const fc_int64 *key, fc_int64 N, const fc_int64 *ids, fc_int64 n, fc_int64 batch,
                     int replace, fc_batches *state)
{
    for (fc_int64 i = 0; i < N; i++)
        state[i] = fc_batches_at((fc_u64)key[0], (fc_u64)key[1], (fc_u64)ids[i], (fc_u64)n, (fc_u64)batch,
                                 replace, 0);
    return 0;
}

int fc_batches_host(fc_int64 N, fc_int64 k_first, fc_int64 k_last, fc_batches *state, unsigned int *perm,
                    fc_int64 *out)
{
    for (fc_int64 i = 0; i < N; i++) {
        fc_batches *b = state + i;
        b->perm = perm + i * (fc_int64)b->n;
        for (fc_int64 k = k_first; k < k_last; k++)
            for (fc_u64 q = 0; q < b->batch; q++)
                *out++ = (fc_int64)fc_example(b, (fc_u64)k, q);
    }
    return 0;
}
#endif

#endif
