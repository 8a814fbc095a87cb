#ifndef FLOWCORE_CONTROL_H
#define FLOWCORE_CONTROL_H
#include "target.h"

/* rk.h's step controller: its factor FC_SAFETY err^−α errold^β = FC_SAFETY exp(−α log err +
   β log errold) from one log and one exp in plain arithmetic, so that the compiler vectorises them
   across lanes (glibc's pow, two calls per lane, took 40 % of an IGR dopri5 step) and every width
   and target rounds them alike; log errold is carried from the step that set errold.
   fc_ctrl_log: x = m 2^e with m in [√½, √2), log m = 2 atanh s, s = (m − 1)/(m + 1), |s| ≤ 0.172
   (10 terms); x clamped to [1e-300, 1e300] (a factor clipped to [FC_FACMIN, FC_FACMAX] cannot
   tell beyond). fc_ctrl_exp: exp y = 2^n exp(r), |r| ≤ ln2 / 2 (Taylor to r^13), |y| ≤ 700.
   Relative error of x^p (|p| ≤ 0.2) below 1e-15 for x in [1e-10, 1e10], 3e-14 at the clamp (the
   rounding of p log x, |p log x| ≤ 140; tests/test_lanes.py, against mpmath). Polynomials by
   Estrin's scheme (a short dependency chain: the W = 1 kernels, the PF's and CUDA's, wait on it),
   written out: a loop here keeps the lanes' loop from vectorising. */
#define FC_LN2_HI 6.93147180369123816490e-01     /* ln 2's leading 32 bits: n·FC_LN2_HI is exact */
#define FC_LN2_LO 1.90821492927058770002e-10
#define FC_ROUND_SHIFT 6755399441055744.0        /* 1.5·2^52: y + it rounds y to an integer */
FC_FN double fc_ctrl_log(double x)
{
    x = x < 1e-300 ? 1e-300 : (x > 1e300 ? 1e300 : x);
    const fc_bits64 bits = fc_as_bits(x);
    double m = fc_from_bits((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);       /* [1, 2) */
    double e = fc_from_bits((bits >> 52) | 0x4330000000000000ULL) - 4503599627371519.0;  /* 2^52 + 1023 */
    const int big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    e = big ? e + 1 : e;
    const double s = (m - 1) / (m + 1), s2 = s * s;
    const double s4 = s2 * s2, s8 = s4 * s4, s16 = s8 * s8;   /* Estrin: a short chain for one lane */
    const double q = ((1 + s2 * (1.0 / 3)) + s4 * (1.0 / 5 + s2 * (1.0 / 7)))
                     + s8 * ((1.0 / 9 + s2 * (1.0 / 11)) + s4 * (1.0 / 13 + s2 * (1.0 / 15)))
                     + s16 * (1.0 / 17 + s2 * (1.0 / 19));
    return e * FC_LN2_HI + (e * FC_LN2_LO + 2 * s * q);
}

FC_FN double fc_ctrl_exp(double y)
{
    y = y < -700 ? -700 : (y > 700 ? 700 : y);
    const double kd = y * 1.44269504088896338700 + FC_ROUND_SHIFT, n = kd - FC_ROUND_SHIFT;
    const double r = (y - n * FC_LN2_HI) - n * FC_LN2_LO;
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double ex = ((1 + r) + r2 * (1.0 / 2 + r * (1.0 / 6)))
                      + r4 * ((1.0 / 24 + r * (1.0 / 120)) + r2 * (1.0 / 720 + r * (1.0 / 5040)))
                      + r8 * ((1.0 / 40320 + r * (1.0 / 362880)) + r2 * (1.0 / 3628800 + r * (1.0 / 39916800))
                              + r4 * (1.0 / 479001600 + r * (1.0 / 6227020800.0)));
    return ex * fc_from_bits((fc_as_bits(kd) - fc_as_bits(FC_ROUND_SHIFT) + 1023) << 52);
}

#endif
