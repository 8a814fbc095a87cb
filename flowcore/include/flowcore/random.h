/* Counter-based random numbers for the stochastic kernels (SGD, SDEs), the same on both targets.
 *
 * Philox4x64-10 (Salmon et al. 2011; numpy.random.Philox is the same function): 4 × 64 random
 * bits from a counter and a key, with no state. A kernel keys every draw by what it is for:
 *
 *     key     = (seed_lo, seed_hi)                  the user's seed (up to 128 bits)
 *     counter = (block, step, trajectory, purpose)
 *
 * so a trajectory's numbers depend on its id and step only: never on threads, batching, the order
 * of work or the device, and any trajectory can be replayed alone.
 *
 * Normals: Box–Muller on pairs of 53-bit uniforms, u1 in (0, 1] (log never sees 0).
 * Indices below n: the high word of u · n (Lemire; bias below n / 2^64).
 * Permutations without memory: a balanced Feistel network on 2·half bits, keyed per (trajectory,
 * epoch), with cycle walking onto [0, n) — a keyed bijection, so epoch e's k-th example is
 * computed directly (no shuffled array per trajectory, which a GPU thread could not hold).
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

/* One trajectory's draws for one purpose at one step: 4 numbers per block, blocks 0, 1, ... */
typedef struct {
    fc_u64 k0, k1, step, traj, purpose, block;
    fc_u64x4 buf;
    int used;                     /* numbers of buf consumed (4: draw a new block) */
} fc_stream;

FC_FN fc_stream fc_stream_at(fc_u64 k0, fc_u64 k1, fc_u64 traj, fc_u64 step, fc_u64 purpose)
{
    fc_stream s;
    s.k0 = k0; s.k1 = k1; s.traj = traj; s.step = step; s.purpose = purpose; s.block = 0;
    s.used = 4;
    return s;
}

FC_FN fc_u64 fc_bits(fc_stream *s)
{
    if (s->used == 4) {
        s->buf = fc_philox(s->block++, s->step, s->traj, s->purpose, s->k0, s->k1);
        s->used = 0;
    }
    return s->buf.v[s->used++];
}

/* (0, 1]: never 0, so that log(u) is finite */
FC_FN double fc_uniform_open0(fc_u64 u) { return ((double)(u >> 11) + 1.0) * 0x1.0p-53; }
FC_FN double fc_uniform(fc_u64 u) { return (double)(u >> 11) * 0x1.0p-53; }

/* two standard normals from two draws (Box–Muller) */
FC_FN void fc_normal2(fc_stream *s, double *z0, double *z1)
{
    const double r = sqrt(-2.0 * log(fc_uniform_open0(fc_bits(s))));
    const double t = 2.0 * FC_PI * fc_uniform(fc_bits(s));
    *z0 = r * cos(t);
    *z1 = r * sin(t);
}

/* a normal stream hands them out one at a time */
typedef struct { fc_stream s; double spare; int has_spare; } fc_normals;

FC_FN fc_normals fc_normals_at(fc_u64 k0, fc_u64 k1, fc_u64 traj, fc_u64 step)
{
    fc_normals z;
    z.s = fc_stream_at(k0, k1, traj, step, FC_RNG_NORMAL);
    z.spare = 0; z.has_spare = 0;
    return z;
}

FC_FN double fc_normal(fc_normals *z)
{
    if (z->has_spare) { z->has_spare = 0; return z->spare; }
    double a, b;
    fc_normal2(&z->s, &a, &b);
    z->spare = b; z->has_spare = 1;
    return a;
}

FC_FN fc_u64 fc_below(fc_stream *s, fc_u64 n) { return fc_mulhi(fc_bits(s), n); }

/* splitmix64's finaliser: the Feistel round function */
FC_FN fc_u64 fc_mix(fc_u64 z)
{
    z ^= z >> 30; z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27; z *= 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct { fc_u64 k0, k1, n; int half; } fc_perm;

/* the permutation of [0, n) that trajectory `traj` uses in epoch `epoch` */
FC_FN fc_perm fc_perm_at(fc_u64 k0, fc_u64 k1, fc_u64 traj, fc_u64 epoch, fc_u64 n)
{
    fc_stream s = fc_stream_at(k0, k1, traj, epoch, FC_RNG_EPOCH);
    fc_perm p;
    p.k0 = fc_bits(&s); p.k1 = fc_bits(&s) | 1; p.n = n; p.half = 1;
    while ((fc_u64)1 << (2 * p.half) < n) p.half++;
    return p;
}

FC_FN fc_u64 fc_permute(const fc_perm *p, fc_u64 i)
{
    const fc_u64 mask = ((fc_u64)1 << p->half) - 1;
    do {                                         /* cycle walking: at most a few rounds (4^half < 4n) */
        fc_u64 L = i >> p->half, R = i & mask;
        for (fc_u64 r = 0; r < 6; r++) {
            const fc_u64 t = L ^ (fc_mix(R ^ (p->k0 + r * p->k1)) & mask);
            L = R; R = t;
        }
        i = (L << p->half) | R;
    } while (i >= p->n);
    return i;
}

#endif
