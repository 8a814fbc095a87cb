/* Standard normals for the SDE kernels, from random.h's streams (purpose FC_RNG_NORMAL).
 * The including source defines the ziggurat's tables fc_zig_x[257] and fc_zig_f[257] first
 * (written by flowcore/_stochastic.py: ziggurat_tables). */
#ifndef FLOWCORE_NORMAL_H
#define FLOWCORE_NORMAL_H
#include "random.h"

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
    z.s = fc_stream_at(k0, k1, traj, FC_RNG_NORMAL, 0);
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

#endif
