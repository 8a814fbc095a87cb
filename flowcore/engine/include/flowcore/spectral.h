/* The principal flow's scalar function and its 2x2 closed forms.
 *
 *   phi(z) = log(1 - z) / z,   phi(0) = -1,   z = h * lambda,
 *
 * so that the PF is theta' = phi(hH) g.  log(1 - z) is multivalued: every function
 * here takes the log value L = log(1 - z) + 2 pi i k explicitly, so the caller
 * decides the branch (fc_log1m for the principal one, fc_log1m_near to continue
 * a previous value).  Near z = 0 on the principal branch a series replaces L/z,
 * which would lose all digits to cancellation.
 */
#ifndef FLOWCORE_SPECTRAL_H
#define FLOWCORE_SPECTRAL_H

#include "target.h"     /* the same source serves the extensions, the host kernels and CUDA */

#define FC_TWO_PI 6.283185307179586476925286766559
#define FC_SINGULAR_TOL 1e-12 /* |1 - h lambda| below this: the PF's log singularity */
#define FC_SMALL_Z 0.25       /* |z| below this: series (28 terms reach 0.25^28/29 < 1e-18) */
#define FC_SERIES_TERMS 28
#define FC_CLOSE_REL 1e-2
/* 1/(p + 1) for the series: a table, not a division per term (they were a fifth of a PF evaluation) */
FC_CONST double fc_recip[31] = {1.0 / 1, 1.0 / 2, 1.0 / 3, 1.0 / 4, 1.0 / 5, 1.0 / 6, 1.0 / 7, 1.0 / 8, 1.0 / 9, 1.0 / 10, 1.0 / 11, 1.0 / 12, 1.0 / 13, 1.0 / 14, 1.0 / 15, 1.0 / 16, 1.0 / 17, 1.0 / 18, 1.0 / 19, 1.0 / 20, 1.0 / 21, 1.0 / 22, 1.0 / 23, 1.0 / 24, 1.0 / 25, 1.0 / 26, 1.0 / 27, 1.0 / 28, 1.0 / 29, 1.0 / 30, 1.0 / 31};     /* |z1 - z2| below this * (|z1| + |z2|): Taylor at the midpoint */

/* log(1 - z), principal branch, with 1 - z on the cut (real, <= 0) mapped to +i pi
 * whatever the sign of the zero imaginary part (1.0 - (x + 0i) yields -0i in C). */
FC_FN fc_z fc_log1m(fc_z z)
{
    const double re = 1.0 - fc_re(z), im = -fc_im(z);
    return fc_clog(fc_cmplx(re, im == 0.0 ? 0.0 : im));
}

/* The branch of log(1 - z) closest to a previous value Lprev (analytic continuation
 * along a path with small steps).  A previous value exactly on the real sheet
 * (Im Lprev == 0: a real trajectory with h lambda < 1) is equidistant from the two sides
 * of the cut, so a path that arrives at the branch point along the real axis would take
 * whichever side rounding noise in a Runge-Kutta stage picks; beyond the branch point
 * (Re z > 1) it takes the +i pi side instead, the same convention as a real start. */
FC_FN fc_z fc_log1m_near(fc_z z, fc_z Lprev)
{
    const fc_z L = fc_log1m(z);
    if (fc_im(Lprev) == 0 && fc_re(z) > 1)
        return fc_im(L) < 0 ? L + fc_cmplx(0, FC_TWO_PI) : L;
    const double k = nearbyint((fc_im(Lprev) - fc_im(L)) / FC_TWO_PI);
    return L + fc_cmplx(0, FC_TWO_PI * k);
}

/* ---- the same in straight-line code, for loops over lanes (the diagonal PF in rk.h's lanes):
 * no branches (selects), no C99 complex calls, log, log1p and atan2 vectorised (target.h).
 *
 * Re log(1 - z) = ½ log|1 - z|²: near z = 0 as ½ log1p(z_r (z_r - 2) + z_i²), which forms
 * |1 - z|² - 1 without rounding 1 - z, so that L keeps its relative accuracy as z -> 0 and
 * phi = L / z needs no series there (the cancellation the series avoids is log(1 - z) evaluated
 * at a rounded 1 - z); elsewhere as ½ log(w_r² + w_i²), w = 1 - z exact near z = 1 (log1p's
 * argument there, -1 + |w|², would lose |w|'s digits). Im: atan2. Valid for 1e-150 < |1 - z| and
 * |z| < 1e150 (the squares under- or overflow beyond). Within 4 ulp of mpmath for phi over the
 * plane, the real axis, near 0 and 1 and on the circle |1 - z| = 1 (tests/test_lanes.py). The arguments and
 * the selection are apart from the calls, so that a loop over lanes can hold the calls alone. */
FC_FN double fc_log1m_arg(fc_z z) { return fc_re(z) * (fc_re(z) - 2.0) + fc_im(z) * fc_im(z); }
FC_FN double fc_log1m_norm2(fc_z z)
{
    const double wr = 1.0 - fc_re(z), wi = fc_im(z);
    return wr * wr + wi * wi;
}
FC_FN double fc_arg_y(fc_z z) { return -fc_im(z) + 0.0; }     /* +0 for either zero: 1.0 - (x + 0i)
                                                               is -0i in C; the cut goes to +i pi */
FC_FN double fc_arg_x(fc_z z) { return 1.0 - fc_re(z); }
FC_FN fc_z fc_log1m_parts(fc_z z, double log1p_value, double log_value, double atan2_value)
{
    const int near0 = fc_lt(fabs(fc_log1m_arg(z)), 0.5);
    return fc_cmplx(0.5 * (near0 ? log1p_value : log_value), atan2_value);
}

FC_FN fc_z fc_log1m_lane(fc_z z)
{
    return fc_log1m_parts(z, fc_vlog1p(fc_log1m_arg(z)), fc_vlog(fc_log1m_norm2(z)),
                          fc_vatan2(fc_arg_y(z), fc_arg_x(z)));
}

/* The branch of log(1 - z) nearest Lprev (fc_log1m_near's rules) from the principal value L:
   every value computed, then selected, and compared quietly (fc_lt, target.h) */
FC_FN fc_z fc_near_lane(fc_z z, fc_z L, fc_z Lprev)
{
    const double li = fc_im(L), lp = fc_im(Lprev);
    const double k = rint((lp - li) / FC_TWO_PI);                  /* nearbyint, inlined */
    const double up = li + FC_TWO_PI, near = li + FC_TWO_PI * k;
    const double cut = fc_lt(li, 0) ? up : li;                     /* the +i pi side past 1 */
    return fc_cmplx(fc_re(L), (lp == 0) & fc_gt(fc_re(z), 1) ? cut : near);
}

/* fc_log1m_near with fc_log1m_lane */
FC_FN fc_z fc_log1m_near_lane(fc_z z, fc_z Lprev)
{
    return fc_near_lane(z, fc_log1m_lane(z), Lprev);
}

/* phi(z) = L / z (Smith's division, both orders computed and one selected), phi(0) = -1 on the
   principal branch (on another, L/0 is not finite: the caller's check says NONFINITE) */
FC_FN fc_z fc_phi_lane(fc_z z, fc_z L)
{
    const double zr = fc_re(z), zi = fc_im(z), lr = fc_re(L), li = fc_im(L);
    const int wide = fc_ge(fabs(zr), fabs(zi));
    const double c = wide ? zr : zi, e = wide ? zi : zr;
    const double r = e / c, d = c + e * r;
    const double a_re = (lr + li * r) / d, a_im = (li - lr * r) / d;     /* |z_r| >= |z_i| */
    const double b_re = (lr * r + li) / d, b_im = (li * r - lr) / d;
    const int zero = (zr == 0) & (zi == 0) & fc_le(fabs(li), FC_PI);
    return fc_cmplx(zero ? -1.0 : wide ? a_re : b_re, zero ? 0.0 : wide ? a_im : b_im);
}

/* Is L on the principal branch of log(1 - z)? */
FC_FN int fc_is_principal(fc_z L)
{
    return fabs(fc_im(L)) <= FC_PI;
}

/* phi(z) = L / z with L a value of log(1 - z). */
FC_CALL fc_z fc_phi(fc_z z, fc_z L)
{
    if (fc_cabs(z) < FC_SMALL_Z && fc_is_principal(L)) {
        fc_z s = 0.0;
        for (int p = FC_SERIES_TERMS; p >= 0; p--) s = s * z - fc_recip[p];
        return s;  /* -(1 + z/2 + z^2/3 + ...) */
    }
    return L / z;
}

/* n-th derivative of phi at m (n <= 5), from Leibniz on L(z) * (1/z):
 * L^(0) = L, L^(k) = -(k-1)! / (1 - m)^k;  (1/z)^(j) = (-1)^j j! / m^(j+1). */
FC_CALL fc_z fc_phi_deriv(fc_z m, fc_z L, int n)
{
    fc_z s = 0.0, Lk = L, w = 1.0 - m, pw = 1.0;   /* pw = (1 - m)^k */
    double binom = 1, fact_k = 1;                  /* C(n, k), (k-1)! at step k */
    for (int k = 0; k <= n; k++) {
        if (k > 0) {
            pw = pw * w;
            Lk = -fact_k / pw;
            fact_k *= k;
        }
        const int j = n - k;
        double fact_j = 1;
        fc_z mp = m;                                /* m^(j+1) */
        for (int q = 1; q <= j; q++) { fact_j *= q; mp = mp * m; }
        s = s + binom * Lk * ((j % 2 ? -fact_j : fact_j) / mp);
        binom = binom * (n - k) / (k + 1);
    }
    return s;
}

/* Divided difference phi[z1, z2] = (phi(z1) - phi(z2)) / (z1 - z2) with L1, L2 the
 * log values (branches) of each; the confluent limit phi'(z) when z1 ~ z2. */
FC_CALL fc_z fc_phi_divdiff(fc_z z1, fc_z L1,
                                            fc_z z2, fc_z L2)
{
    const int principal = fc_is_principal(L1) && fc_is_principal(L2);
    if (principal && fc_cabs(z1) < FC_SMALL_Z && fc_cabs(z2) < FC_SMALL_Z) {
        /* -sum_{p>=1} h_{p-1}(z1, z2) / (p + 1), h_k complete homogeneous: no cancellation */
        fc_z hk = 1.0, pw = 1.0, s = 0.0;
        for (int p = 1; p <= FC_SERIES_TERMS + 1; p++) {
            s = s - hk * fc_recip[p];
            pw = pw * z1;
            hk = pw + z2 * hk;
        }
        return s;
    }
    const fc_z d = z1 - z2;
    if (fc_cabs(d) < FC_CLOSE_REL * (fc_cabs(z1) + fc_cabs(z2))
        && nearbyint((fc_im(L1) - fc_im(fc_log1m(z1))) / FC_TWO_PI)
               == nearbyint((fc_im(L2) - fc_im(fc_log1m(z2))) / FC_TWO_PI)) {
        const double k1 = nearbyint((fc_im(L1) - fc_im(fc_log1m(z1))) / FC_TWO_PI);
        /* phi[z1,z2] = phi'(m) + phi'''(m) e^2/6 + phi^(5)(m) e^4/120, e = d/2 (odd terms cancel) */
        const fc_z m = 0.5 * (z1 + z2), e2 = 0.25 * d * d;
        const fc_z Lm = fc_log1m(m) + fc_cmplx(0, FC_TWO_PI * k1);
        return fc_phi_deriv(m, Lm, 1) + fc_phi_deriv(m, Lm, 3) * e2 / 6.0
               + fc_phi_deriv(m, Lm, 5) * e2 * e2 / 120.0;
    }
    return (fc_phi(z1, L1) - fc_phi(z2, L2)) / d;
}

/* Eigenvalues of the complex-symmetric 2x2 [[a, b], [b, d]]: the larger-modulus one from
 * mean +/- r without cancellation, the other from the determinant. */
FC_FN void fc_eig2(fc_z a, fc_z b, fc_z d,
                           fc_z *l1, fc_z *l2)
{
    const fc_z mean = 0.5 * (a + d), half = 0.5 * (a - d);
    fc_z r = fc_csqrt(half * half + b * b);
    if (fc_re(fc_conj(mean) * r) < 0) r = -r;
    *l1 = mean + r;
    const fc_z det = a * d - b * b;
    *l2 = (fc_re(*l1) != 0 || fc_im(*l1) != 0) ? det / *l1 : mean - r;
}

/* A unit (Hermitian norm) eigenvector of [[a, b], [b, d]] for eigenvalue lam: the better
 * conditioned of (b, lam - a) and (lam - d, b); the k-th unit vector when H is scalar. */
FC_FN void fc_eigvec2(fc_z a, fc_z b, fc_z d,
                              fc_z lam, int k, fc_z *v)
{
    fc_z p0 = b, p1 = lam - a, q0 = lam - d, q1 = b;
    double np = sqrt(fc_re(p0 * fc_conj(p0) + p1 * fc_conj(p1)));
    double nq = sqrt(fc_re(q0 * fc_conj(q0) + q1 * fc_conj(q1)));
    if (np >= nq && np > 0) { const double s = 1 / np; v[0] = p0 * s; v[1] = p1 * s; }
    else if (nq > 0) { const double s = 1 / nq; v[0] = q0 * s; v[1] = q1 * s; }
    else { v[0] = (double)(k == 0); v[1] = (double)(k == 1); }
}

#endif
