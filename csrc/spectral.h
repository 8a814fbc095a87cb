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

#include <complex.h>
#include <math.h>

#ifndef CMPLX
#define CMPLX(x, y) ((double complex)((double)(x) + _Complex_I * (double)(y)))
#endif

#define FC_TWO_PI 6.283185307179586476925286766559
#define FC_SINGULAR_TOL 1e-12 /* |1 - h lambda| below this: the PF's log singularity */
#define FC_SMALL_Z 0.25       /* |z| below this: series (28 terms reach 0.25^28/29 < 1e-18) */
#define FC_SERIES_TERMS 28
#define FC_CLOSE_REL 1e-2     /* |z1 - z2| below this * (|z1| + |z2|): Taylor at the midpoint */

/* log(1 - z), principal branch, with 1 - z on the cut (real, <= 0) mapped to +i pi
 * whatever the sign of the zero imaginary part (1.0 - (x + 0i) yields -0i in C). */
static inline double complex fc_log1m(double complex z)
{
    const double re = 1.0 - creal(z), im = -cimag(z);
    return clog(CMPLX(re, im == 0.0 ? 0.0 : im));
}

/* The branch of log(1 - z) closest to a previous value Lprev (analytic continuation
 * along a path with small steps).  A previous value exactly on the real sheet
 * (Im Lprev == 0: a real trajectory with h lambda < 1) is equidistant from the two sides
 * of the cut, so a path that arrives at the branch point along the real axis would take
 * whichever side rounding noise in a Runge-Kutta stage picks; beyond the branch point
 * (Re z > 1) it takes the +i pi side instead, the same convention as a real start. */
static inline double complex fc_log1m_near(double complex z, double complex Lprev)
{
    const double complex L = fc_log1m(z);
    if (cimag(Lprev) == 0 && creal(z) > 1)
        return cimag(L) < 0 ? L + I * FC_TWO_PI : L;
    const double k = nearbyint((cimag(Lprev) - cimag(L)) / FC_TWO_PI);
    return L + I * (FC_TWO_PI * k);
}

/* Is L on the principal branch of log(1 - z)? */
static inline int fc_is_principal(double complex L)
{
    return fabs(cimag(L)) <= M_PI;
}

/* phi(z) = L / z with L a value of log(1 - z). */
static inline double complex fc_phi(double complex z, double complex L)
{
    if (cabs(z) < FC_SMALL_Z && fc_is_principal(L)) {
        double complex s = 0;
        for (int p = FC_SERIES_TERMS; p >= 0; p--) s = s * z - 1.0 / (p + 1);
        return s;  /* -(1 + z/2 + z^2/3 + ...) */
    }
    return L / z;
}

/* n-th derivative of phi at m (n <= 5), from Leibniz on L(z) * (1/z):
 * L^(0) = L, L^(k) = -(k-1)! / (1 - m)^k;  (1/z)^(j) = (-1)^j j! / m^(j+1). */
static inline double complex fc_phi_deriv(double complex m, double complex L, int n)
{
    static const double fact[6] = {1, 1, 2, 6, 24, 120};
    static const double binom[6][6] = {{1}, {1, 1}, {1, 2, 1}, {1, 3, 3, 1}, {1, 4, 6, 4, 1},
                                       {1, 5, 10, 10, 5, 1}};
    double complex s = 0;
    for (int k = 0; k <= n; k++) {
        const double complex Lk = k == 0 ? L : -fact[k - 1] / cpow(1.0 - m, k);
        const int j = n - k;
        const double complex inv = (j % 2 ? -fact[j] : fact[j]) / cpow(m, j + 1);
        s += binom[n][k] * Lk * inv;
    }
    return s;
}

/* Divided difference phi[z1, z2] = (phi(z1) - phi(z2)) / (z1 - z2) with L1, L2 the
 * log values (branches) of each; the confluent limit phi'(z) when z1 ~ z2. */
static inline double complex fc_phi_divdiff(double complex z1, double complex L1,
                                            double complex z2, double complex L2)
{
    const int principal = fc_is_principal(L1) && fc_is_principal(L2);
    if (principal && cabs(z1) < FC_SMALL_Z && cabs(z2) < FC_SMALL_Z) {
        /* -sum_{p>=1} h_{p-1}(z1, z2) / (p + 1), h_k complete homogeneous: no cancellation */
        double complex hk = 1, pw = 1, s = 0;
        for (int p = 1; p <= FC_SERIES_TERMS + 1; p++) {
            s -= hk / (p + 1);
            pw *= z1;
            hk = pw + z2 * hk;
        }
        return s;
    }
    const double complex d = z1 - z2;
    if (cabs(d) < FC_CLOSE_REL * (cabs(z1) + cabs(z2))
        && nearbyint((cimag(L1) - cimag(fc_log1m(z1))) / FC_TWO_PI)
               == nearbyint((cimag(L2) - cimag(fc_log1m(z2))) / FC_TWO_PI)) {
        const double k1 = nearbyint((cimag(L1) - cimag(fc_log1m(z1))) / FC_TWO_PI);
        /* phi[z1,z2] = phi'(m) + phi'''(m) e^2/6 + phi^(5)(m) e^4/120, e = d/2 (odd terms cancel) */
        const double complex m = 0.5 * (z1 + z2), e2 = 0.25 * d * d;
        const double complex Lm = fc_log1m(m) + I * (FC_TWO_PI * k1);
        return fc_phi_deriv(m, Lm, 1) + fc_phi_deriv(m, Lm, 3) * e2 / 6.0
               + fc_phi_deriv(m, Lm, 5) * e2 * e2 / 120.0;
    }
    return (fc_phi(z1, L1) - fc_phi(z2, L2)) / d;
}

/* Eigenvalues of the complex-symmetric 2x2 [[a, b], [b, d]]: the larger-modulus one from
 * mean +/- r without cancellation, the other from the determinant. */
static inline void fc_eig2(double complex a, double complex b, double complex d,
                           double complex *l1, double complex *l2)
{
    const double complex mean = 0.5 * (a + d), half = 0.5 * (a - d);
    double complex r = csqrt(half * half + b * b);
    if (creal(conj(mean) * r) < 0) r = -r;
    *l1 = mean + r;
    const double complex det = a * d - b * b;
    *l2 = *l1 != 0 ? det / *l1 : mean - r;
}

/* A unit (Hermitian norm) eigenvector of [[a, b], [b, d]] for eigenvalue lam: the better
 * conditioned of (b, lam - a) and (lam - d, b); the k-th unit vector when H is scalar. */
static inline void fc_eigvec2(double complex a, double complex b, double complex d,
                              double complex lam, int k, double complex *v)
{
    double complex p0 = b, p1 = lam - a, q0 = lam - d, q1 = b;
    double np = sqrt(creal(p0 * conj(p0) + p1 * conj(p1)));
    double nq = sqrt(creal(q0 * conj(q0) + q1 * conj(q1)));
    if (np >= nq && np > 0) { v[0] = p0 / np; v[1] = p1 / np; }
    else if (nq > 0) { v[0] = q0 / nq; v[1] = q1 / nq; }
    else { v[0] = k == 0; v[1] = k == 1; }
}

#endif
