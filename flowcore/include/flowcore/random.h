/* Counter-based random numbers for the stochastic kernels (SGD, SDEs), the same on both targets.
 *
 * Philox4x64-10 (Salmon et al. 2011; numpy.random.Philox is the same function): 4 × 64 random
 * bits from a counter and a key, with no state. A kernel keys every draw by what it is for:
 *
 *     key     = (seed_lo, seed_hi)                  the user's seed (up to 128 bits)
 *     counter = (block, trajectory, purpose, 0)
 *
 * Each trajectory reads its own stream of blocks 0, 1, 2, ... (one stream per purpose), four
 * numbers a block, as far as its steps need: its numbers depend on the seed and its id only —
 * never on threads, batching, the order of work or the device — and a trajectory replayed alone
 * is the same path. (A block per step, keyed by the step, would cost a Philox call per number
 * where a one-dimensional SDE needs one number a step.)
 *
 * Normals: the ziggurat (below), exact, about one draw per normal.
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

/* One trajectory's draws for one purpose: 4 numbers per block, blocks 0, 1, ... */
typedef struct {
    fc_u64 k0, k1, traj, purpose, block;
    fc_u64x4 buf;
    int used;                     /* numbers of buf consumed (4: draw a new block) */
} fc_stream;

FC_FN fc_stream fc_stream_at(fc_u64 k0, fc_u64 k1, fc_u64 traj, fc_u64 purpose)
{
    fc_stream s;
    s.k0 = k0; s.k1 = k1; s.traj = traj; s.purpose = purpose; s.block = 0;
    s.used = 4;
    return s;
}

FC_FN fc_u64 fc_bits(fc_stream *s)
{
    if (s->used == 4) {
        s->buf = fc_philox(s->block++, s->traj, s->purpose, 0, s->k0, s->k1);
        s->used = 0;
    }
    return s->buf.v[s->used++];
}

/* [0, 1) and (0, 1] (never 0, so that log(u) is finite) from the top 53 bits; through a signed
   integer, which converts in one instruction where an unsigned 64-bit one takes several */
FC_FN double fc_uniform(fc_u64 u) { return (double)(fc_int64)(u >> 11) * 0x1.0p-53; }
FC_FN double fc_uniform_open0(fc_u64 u) { return ((double)(fc_int64)(u >> 11) + 1.0) * 0x1.0p-53; }

/* Standard normals by the ziggurat (Marsaglia & Tsang 2000) on 256 layers of equal area: one draw
 * gives the layer (8 bits), the sign (1 bit) and the abscissa (53 bits); 98.8% of draws are
 * accepted at once; the rest test a wedge under exp(−x²/2) or sample the tail beyond r
 * (Marsaglia 1964). The tables fc_zig_x[257] (layer widths, x[1] = r) and fc_zig_f[257] =
 * exp(−x²/2) are written into each kernel's source by flowcore/_stochastic.py (ziggurat_tables).
 * A normal consumes a variable number of draws: the stream just continues. */
typedef struct { fc_stream s; } fc_normals;

FC_FN fc_normals fc_normals_at(fc_u64 k0, fc_u64 k1, fc_u64 traj)
{
    fc_normals z;
    z.s = fc_stream_at(k0, k1, traj, FC_RNG_NORMAL);
    return z;
}

FC_FN double fc_normal(fc_normals *z)
{
    for (;;) {
        const fc_u64 b = fc_bits(&z->s);
        const int i = (int)(b & 0xff);
        const double sign = (b & 0x100) ? -1.0 : 1.0;
        const double x = fc_uniform(b) * fc_zig_x[i];
        if (x < fc_zig_x[i + 1]) return sign * x;           /* inside the layer's core rectangle */
        if (i == 0) {                                        /* the tail beyond r = fc_zig_x[1] */
            double t, y;
            do {
                t = -log(fc_uniform_open0(fc_bits(&z->s))) / fc_zig_x[1];
                y = -log(fc_uniform_open0(fc_bits(&z->s)));
            } while (2.0 * y < t * t);
            return sign * (fc_zig_x[1] + t);
        }
        const double y = fc_zig_f[i] + fc_uniform(fc_bits(&z->s)) * (fc_zig_f[i + 1] - fc_zig_f[i]);
        if (y < exp(-0.5 * x * x)) return sign * x;           /* under the curve in the wedge */
    }
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

/* the permutation of [0, n) that trajectory `traj` uses in epoch `epoch`: its keys are the block
   (epoch, trajectory, FC_RNG_EPOCH, 0), so any epoch's permutation is found directly */
FC_FN fc_perm fc_perm_at(fc_u64 k0, fc_u64 k1, fc_u64 traj, fc_u64 epoch, fc_u64 n)
{
    const fc_u64x4 r = fc_philox(epoch, traj, FC_RNG_EPOCH, 0, k0, k1);
    fc_perm p;
    p.k0 = r.v[0]; p.k1 = r.v[1] | 1; p.n = n; p.half = 1;
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
