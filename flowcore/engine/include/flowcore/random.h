/* Counter-based random numbers for the stochastic kernels (SGD, SDEs), the same on both targets.
 *
 * Philox4x64-10 (Salmon et al. 2011; numpy.random.Philox is the same function): 4 × 64 random
 * bits from a counter and a key, with no state. A kernel keys every draw by what it is for:
 *
 *     key     = (seed_lo, seed_hi)                  the user's seed (up to 128 bits)
 *     counter = (block, trajectory, purpose, sub)   sub: the epoch for FC_RNG_EPOCH, else 0
 *
 * Each trajectory reads its own stream of blocks 0, 1, 2, ... (one stream per purpose), four
 * numbers a block, as far as its steps need: its numbers depend on the seed and its id only —
 * never on threads, batching, the order of work or the device — and a trajectory replayed alone
 * is the same path. (A block per step, keyed by the step, would cost a Philox call per number
 * where a one-dimensional SDE needs one number a step.)
 *
 * Indices below n: Lemire's multiply-and-reject (exactly uniform; a redraw has probability below
 * n / 2^64). Normals: normal.h. Minibatches: batches.h.
 */
#ifndef FLOWCORE_RANDOM_H
#define FLOWCORE_RANDOM_H
#include "target.h"

#ifdef FC_CUDA
typedef unsigned long long fc_u64;
FC_FN fc_u64 fc_mulhi(fc_u64 a, fc_u64 b) { return __umul64hi(a, b); }
#else
typedef uint64_t fc_u64;
FC_FN fc_u64 fc_mulhi(fc_u64 a, fc_u64 b) { return (fc_u64)(((unsigned __int128)a * b) >> 64); }
#endif

enum { FC_RNG_NORMAL = 0, FC_RNG_INDEX = 1, FC_RNG_EPOCH = 2, FC_RNG_SIGN = 3 };

typedef struct { fc_u64 v[4]; } fc_u64x4;

FC_FN fc_u64x4 fc_philox(fc_u64 c0, fc_u64 c1, fc_u64 c2, fc_u64 c3, fc_u64 k0, fc_u64 k1)
{
    for (int r = 0; r < 10; r++) {
        const fc_u64 a = 0xD2E7470EE14C6C93ULL * c0, ah = fc_mulhi(0xD2E7470EE14C6C93ULL, c0);
        const fc_u64 b = 0xCA5A826395121157ULL * c2, bh = fc_mulhi(0xCA5A826395121157ULL, c2);
        c0 = bh ^ c1 ^ k0; c1 = b; c2 = ah ^ c3 ^ k1; c3 = a;
        k0 += 0x9E3779B97F4A7C15ULL; k1 += 0xBB67AE8584CAA73BULL;
    }
    fc_u64x4 out;
    out.v[0] = c0; out.v[1] = c1; out.v[2] = c2; out.v[3] = c3;
    return out;
}

/* One trajectory's draws for one purpose: 4 numbers per block, blocks 0, 1, ... */
typedef struct {
    fc_u64 k0, k1, traj, purpose, sub, block;
    fc_u64x4 buf;
    int used;                     /* numbers of buf consumed (4: draw a new block) */
} fc_stream;

FC_FN fc_stream fc_stream_at(fc_u64 k0, fc_u64 k1, fc_u64 traj, fc_u64 purpose, fc_u64 sub)
{
    fc_stream s;
    s.k0 = k0; s.k1 = k1; s.traj = traj; s.purpose = purpose; s.sub = sub; s.block = 0;
    s.used = 4;
    return s;
}

FC_FN fc_u64 fc_bits(fc_stream *s)
{
    if (s->used == 4) {
        s->buf = fc_philox(s->block++, s->traj, s->purpose, s->sub, s->k0, s->k1);
        s->used = 0;
    }
    return s->buf.v[s->used++];
}

/* [0, 1) and (0, 1] (never 0, so that log(u) is finite) from the top 53 bits; through a signed
   integer, which converts in one instruction where an unsigned 64-bit one takes several */
FC_FN double fc_uniform(fc_u64 u) { return (double)(fc_int64)(u >> 11) * 0x1.0p-53; }
FC_FN double fc_uniform_open0(fc_u64 u) { return ((double)(fc_int64)(u >> 11) + 1.0) * 0x1.0p-53; }

/* uniform on [0, n), n ≥ 1, exactly (Lemire 2019): the high word of u·n, redrawn while the low
   word falls below 2^64 mod n (the draws that would make some values one more likely) */
FC_FN fc_u64 fc_below(fc_stream *s, fc_u64 n)
{
    fc_u64 u = fc_bits(s), low = u * n;
    if (low < n) {
        const fc_u64 reject = (0 - n) % n;              /* 2^64 mod n */
        while (low < reject) { u = fc_bits(s); low = u * n; }
    }
    return fc_mulhi(u, n);
}

#endif
