"""Integrator throughput: fc.solve against scipy, numpy and a plain C loop, in one run.

Problems (dopri5, rtol = 1e-8, atol = 1e-10, t in [0, T]):
  (a) IGR on the 2-D double well (real)
  (b) PF on a 2-D quadratic with hλ_max ≈ 1.6 (complex)
  (c) PF on the 2-D double well, h = 0.4, with branch tracking (complex)

Baselines: scipy.solve_ivp(RK45) per trajectory (a sample, extrapolated), solve_ivp on
all trajectories stacked as one system (shared steps) — neither for (c): solve_ivp cannot
carry the branch state, and with the principal log instead it chatters on the cut without
finishing (tests/test_solve.py shows it), a plain C dopri5 for each compiled here with the
same compiler (the distance to the limit; (b) and (c) with the same branch rule, tracked logs,
series near z = 0 and escape test as flowcore; (b) with the 2×2 eigen-calculus and eigenvector
matching at every evaluation), and diffrax + jax.vmap when installed (`pip install
.[bench]`; skipped otherwise). Reports medians of repeats, max deviation from a dop853
reference at rtol 1e-12, and the 2-thread speed-up.

    python benchmarks/bench_solve.py [--n 100000] [--quick]
"""
import argparse
import ctypes

import numpy as np
from scipy.integrate import solve_ivp

import flowcore as fc
from _common import compile_c, lanes_env, median_time, paired_times, table, write_json

RTOL, ATOL = 1e-8, 1e-10
RADIUS = 1e3     # diverging PF trajectories spiral outwards in C^D: stop them, as basins do
QUAD = (6.0, 1.0, 2.0)     # (b)'s Hessian [[6, 1], [1, 2]]

DOPRI5_C = r"""
#include <math.h>
#include <stdint.h>
/* IGR on (x^2-1)^2 + y^2: f = -g - (h/2) H g; dopri5's tableau */
static inline __attribute__((always_inline)) void f2(double h, double x, double v, double *o0, double *o1) {
    double gx = 4*x*(x*x-1), gy = 2*v, hxx = 12*x*x-4;
    *o0 = -gx - 0.5*h*hxx*gx; *o1 = -gy - 0.5*h*2*gy;
}
static const double A[7][6] = {{0},{1.0/5},{3.0/40,9.0/40},{44.0/45,-56.0/15,32.0/9},
 {19372.0/6561,-25360.0/2187,64448.0/6561,-212.0/729},
 {9017.0/3168,-355.0/33,46732.0/5247,49.0/176,-5103.0/18656},
 {35.0/384,0,500.0/1113,125.0/192,-2187.0/6784,11.0/84}};
static const double E[7] = {-71.0/57600,0,71.0/16695,-71.0/1920,17253.0/339200,-22.0/525,1.0/40};
"""

PLAIN_C = DOPRI5_C + r"""
/* (a) dopri5 with the same controller as flowcore, one trajectory at a time */
static void f(double h, const double *y, double *o) { f2(h, y[0], y[1], &o[0], &o[1]); }
void run(int64_t n, const double *y0, double T, double lr, double rtol, double atol, double *out,
         int64_t *nfev) {
    for (int64_t p = 0; p < n; p++) {
        double y[2] = {y0[2*p], y0[2*p+1]}, K[7][2], yt[2], yn[2], t = 0, errold = 1e-4, h;
        int64_t nf = 0; int rej = 0;
        f(lr, y, K[0]); nf++;
        { double d0 = 0, d1 = 0;
          for (int a = 0; a < 2; a++) { double sc = atol + rtol*fabs(y[a]);
            d0 += (y[a]/sc)*(y[a]/sc); d1 += (K[0][a]/sc)*(K[0][a]/sc); }
          d0 = sqrt(d0/2); d1 = sqrt(d1/2);
          h = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01*d0/d1; }
        while (t < T) {
            double hh = t + h*(1+1e-9) < T ? h : T - t;
            for (int s = 1; s < 7; s++) {
                for (int a = 0; a < 2; a++) { double acc = 0;
                    for (int j = 0; j < s; j++) acc += A[s][j]*K[j][a];
                    yt[a] = y[a] + hh*acc; }
                f(lr, yt, K[s]); nf++;
            }
            for (int a = 0; a < 2; a++) yn[a] = yt[a];
            double e = 0;
            for (int a = 0; a < 2; a++) { double acc = 0;
                for (int j = 0; j < 7; j++) acc += E[j]*K[j][a];
                double sc = atol + rtol*fmax(fabs(y[a]), fabs(yn[a]));
                e += (hh*acc/sc)*(hh*acc/sc); }
            e = sqrt(e/2);
            if (!(e <= 1)) { h = hh*fmax(0.2, 0.9*pow(e, -0.17)); rej = 1; continue; }
            double fac = e == 0 ? 10 : 0.9*pow(e, -0.17)*pow(errold, 0.04);
            fac = fmin(rej ? 1 : 10, fmax(0.2, fac)); errold = fmax(e, 1e-4); rej = 0;
            if (hh == h || fac < 1) h = hh*fac;
            t = hh == T - t ? T : t + hh;
            y[0] = yn[0]; y[1] = yn[1]; K[0][0] = K[6][0]; K[0][1] = K[6][1];
        }
        out[2*p] = y[0]; out[2*p+1] = y[1]; nfev[p] = nf;
    }
}

/* The PF, tracked, by dopri5 with Hairer's initial step and flowcore's controller: each
   eigenvalue's log(1 - z) is continued from its value at the last accepted step (the branch
   nearest it; a real start past z = 1 on the +i pi side), phi(z) = log(1 - z)/z by its series
   -(1 + z/2 + z^2/3 + ...) near z = 0 on the principal branch. A trajectory stops when |y| > R
   (escaped) or at the singularity |1 - z| < 1e-12. Two fields: (c) the double well, whose H is
   diagonal (f_k = phi(z_k) g_k), and (b) a quadratic with a coupled H = [[a, b], [b, d]]: its
   eigenpairs in closed form at every evaluation (as for any loss; this one's H is constant),
   matched to the last accepted step's by eigenvector overlap, and
   f = phi(z1) g + h phi[z1, z2] (H - lambda1 I) g. */
#include <complex.h>
typedef struct { double complex L[2], V[2][2]; } branch;   /* V: (b) only */
static double complex log1m(double complex z) {
    double complex w = 1 - z;
    return clog(CMPLX(creal(w), cimag(w) == 0 ? 0.0 : cimag(w)));
}
static double complex log1m_near(double complex z, double complex prev) {
    double complex L = log1m(z);
    if (cimag(prev) == 0 && creal(z) > 1) return cimag(L) < 0 ? L + 2*M_PI*I : L;
    return L + 2*M_PI*I*nearbyint((cimag(prev) - cimag(L)) / (2*M_PI));
}
static double complex phi(double complex z, double complex L) {
    if (cabs(z) < 0.25 && fabs(cimag(L)) <= M_PI) {
        double complex s = 0;
        for (int q = 28; q >= 0; q--) s = s*z - 1.0/(q + 1);
        return s;
    }
    return L / z;
}
/* phi[z1, z2]; near z1 = z2 phi'(m) at the midpoint (never met on (b): z = 1.56, 0.44) */
static double complex phi_divdiff(double complex z1, double complex L1, double complex z2, double complex L2) {
    double complex d = z1 - z2;
    if (cabs(d) < 1e-2*(cabs(z1) + cabs(z2))) {
        double complex m = (z1 + z2)/2, Lm = (L1 + L2)/2;
        return (-m/(1 - m) - Lm) / (m*m);
    }
    return (phi(z1, L1) - phi(z2, L2)) / d;
}
/* (c): the double well (x^2 - 1)^2 + y^2 */
static int pf_dw(double h, const double complex *y, const branch *bin, double complex *o, branch *bout) {
    double complex x = y[0], v = y[1];
    double complex g[2] = {4*x*(x*x - 1), 2*v}, z[2] = {h*(12*x*x - 4), h*2.0};
    for (int k = 0; k < 2; k++) {
        if (cabs(1 - z[k]) < 1e-12) return 1;
        bout->L[k] = bin ? log1m_near(z[k], bin->L[k]) : log1m(z[k]);
        o[k] = phi(z[k], bout->L[k]) * g[k];
    }
    return 0;
}
/* (b): (a x^2 + 2 b x y + d y^2)/2 */
static double QA, QB, QD;
static void eigvec2(double complex a, double complex b, double complex d, double complex lam, int k,
                    double complex *v) {
    double complex p0 = b, p1 = lam - a, q0 = lam - d, q1 = b;
    double np = sqrt(creal(p0*conj(p0) + p1*conj(p1))), nq = sqrt(creal(q0*conj(q0) + q1*conj(q1)));
    if (np >= nq && np > 0) { v[0] = p0/np; v[1] = p1/np; }
    else if (nq > 0) { v[0] = q0/nq; v[1] = q1/nq; }
    else { v[0] = k == 0; v[1] = k == 1; }
}
static double overlap(const double complex *p, const double complex *v) {
    return cabs(conj(p[0])*v[0] + conj(p[1])*v[1]);
}
static int pf_quad(double h, const double complex *y, const branch *bin, double complex *o, branch *bout) {
    const double complex a = QA, b = QB, d = QD;
    double complex g[2] = {a*y[0] + b*y[1], b*y[0] + d*y[1]}, lam[2], V[2][2], L[2];
    double complex mean = (a + d)/2, half = (a - d)/2, r = csqrt(half*half + b*b);
    if (creal(conj(mean)*r) < 0) r = -r;
    lam[0] = mean + r;
    lam[1] = lam[0] != 0 ? (a*d - b*b)/lam[0] : mean - r;
    for (int k = 0; k < 2; k++) eigvec2(a, b, d, lam[k], k, V[k]);
    int perm[2] = {0, 1};
    if (bin) {
        if (!(overlap(bin->V[0], V[0]) + overlap(bin->V[1], V[1]) >= overlap(bin->V[0], V[1]) + overlap(bin->V[1], V[0])))
            perm[0] = 1, perm[1] = 0;
        for (int j = 0; j < 2; j++) L[perm[j]] = log1m_near(h*lam[perm[j]], bin->L[j]);
    } else
        for (int k = 0; k < 2; k++) L[k] = log1m(h*lam[k]);
    for (int k = 0; k < 2; k++) if (cabs(1 - h*lam[k]) < 1e-12) return 1;
    for (int j = 0; j < 2; j++) {
        bout->L[j] = L[perm[j]];
        bout->V[j][0] = V[perm[j]][0]; bout->V[j][1] = V[perm[j]][1];
    }
    double complex p1 = phi(h*lam[0], L[0]), p12 = h*phi_divdiff(h*lam[0], L[0], h*lam[1], L[1]);
    o[0] = p1*g[0] + p12*(a*g[0] + b*g[1] - lam[0]*g[0]);
    o[1] = p1*g[1] + p12*(b*g[0] + d*g[1] - lam[0]*g[1]);
    return 0;
}
typedef int (*pf_field)(double, const double complex *, const branch *, double complex *, branch *);
static double enorm(const double complex *a, const double complex *ref, const double complex *b,
                    double rtol, double atol) {
    double e = 0;
    for (int k = 0; k < 2; k++) {
        double sc = atol + rtol*(b ? fmax(cabs(ref[k]), cabs(b[k])) : cabs(ref[k]));
        e += (cabs(a[k])/sc)*(cabs(a[k])/sc);
    }
    return sqrt(e/2);
}
/* always inlined with a constant field: no call through the pointer */
static inline __attribute__((always_inline)) void
pf_dopri5(pf_field pf, int64_t n, const double *y0, double T, double lr, double rtol, double atol,
          double R, double complex *out, int64_t *nfev, int *escaped) {
    for (int64_t p = 0; p < n; p++) {
        double complex y[2] = {y0[2*p], y0[2*p+1]}, K[8][2], yt[2], yn[2], d[2];
        branch bb, bn, bs;
        double t = 0, errold = 1e-4, h;
        int64_t nf = 0; int rej = 0, esc = 0;
        pf(lr, y, 0, K[0], &bb); nf++;           /* the principal logs start the tracking */
        double d0 = enorm(y, y, 0, rtol, atol), d1 = enorm(K[0], y, 0, rtol, atol);
        h = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01*d0/d1;
        h = fmin(h, T);
        for (int k = 0; k < 2; k++) yt[k] = y[k] + h*K[0][k];
        pf(lr, yt, &bb, K[7], &bs); nf++;
        for (int k = 0; k < 2; k++) d[k] = (K[7][k] - K[0][k]);
        double d2 = enorm(d, y, 0, rtol, atol) / h;
        h = (d1 <= 1e-15 && d2 <= 1e-15) ? fmax(1e-6, h*1e-3) : fmin(100*h, pow(0.01/fmax(d1, d2), 0.2));
        while (t < T) {
            double hh = t + h*(1+1e-9) < T ? h : T - t;
            int fault = 0;
            for (int s = 1; s < 7 && !fault; s++) {
                for (int a = 0; a < 2; a++) { double complex acc = 0;
                    for (int j = 0; j < s; j++) acc += A[s][j]*K[j][a];
                    yt[a] = y[a] + hh*acc; }
                fault = pf(lr, yt, &bb, K[s], s == 6 ? &bn : &bs); nf++;
            }
            double e = 0;
            if (!fault) {
                for (int a = 0; a < 2; a++) { double complex acc = 0;
                    for (int j = 0; j < 7; j++) acc += E[j]*K[j][a];
                    d[a] = hh*acc; yn[a] = yt[a]; }
                e = enorm(d, y, yn, rtol, atol);
            }
            if (fault || !(e <= 1)) {
                h = fault ? 0.25*hh : hh*fmax(0.2, 0.9*pow(e, -0.17)); rej = 1;
                if (h < 10*2.220446049250313e-16*fmax(t, 1.0)) break;
                continue;
            }
            double fac = e == 0 ? 10 : 0.9*pow(e, -0.17)*pow(errold, 0.04);
            fac = fmin(rej ? 1 : 10, fmax(0.2, fac)); errold = fmax(e, 1e-4); rej = 0;
            if (hh == h || fac < 1) h = hh*fac;
            t = hh == T - t ? T : t + hh;
            for (int a = 0; a < 2; a++) { y[a] = yn[a]; K[0][a] = K[6][a]; }
            bb = bn;
            if (sqrt(creal(y[0]*conj(y[0]) + y[1]*conj(y[1]))) > R) { esc = 1; break; }
        }
        out[2*p] = y[0]; out[2*p+1] = y[1]; nfev[p] = nf; escaped[p] = esc;
    }
}
void run_pf(int64_t n, const double *y0, double T, double lr, double rtol, double atol, double R,
            double complex *out, int64_t *nfev, int *escaped) {
    pf_dopri5(pf_dw, n, y0, T, lr, rtol, atol, R, out, nfev, escaped);
}
void run_pf_quad(int64_t n, const double *y0, double T, double lr, double a, double b, double d,
                 double rtol, double atol, double R, double complex *out, int64_t *nfev, int *escaped) {
    QA = a; QB = b; QD = d;
    pf_dopri5(pf_quad, n, y0, T, lr, rtol, atol, R, out, nfev, escaped);
}
"""


LANES_C = DOPRI5_C + r"""
/* (a) in lanes: LW trajectories advance together, structure of arrays, each with its own step
   size and the same controller as `run` (glibc's pow); the stages and the error norm in loops
   over the lanes the compiler vectorises, the step control lane by lane; a block runs until its
   last lane reaches T (no refilling). Built with flowcore's lane kernels' flags. */
#define LW 16
void run_lanes(int64_t n, const double *y0, double T, double lr, double rtol, double atol, double *out,
               int64_t *nfev) {
    for (int64_t p0 = 0; p0 < n; p0 += LW) {
        double y[2][LW], K[7][2][LW], yt[2][LW], t[LW], h[LW], hh[LW], errold[LW], e[LW];
        int rej[LW], live[LW], left = 0;
        int64_t nf[LW];
        for (int l = 0; l < LW; l++) {
            const int64_t i = p0 + l < n ? p0 + l : p0;
            y[0][l] = y0[2*i]; y[1][l] = y0[2*i+1];
            t[l] = 0; errold[l] = 1e-4; rej[l] = 0; nf[l] = 1; live[l] = p0 + l < n; left += live[l];
        }
        #pragma omp simd
        for (int l = 0; l < LW; l++) f2(lr, y[0][l], y[1][l], &K[0][0][l], &K[0][1][l]);
        for (int l = 0; l < LW; l++) {
            double d0 = 0, d1 = 0;
            for (int a = 0; a < 2; a++) { double sc = atol + rtol*fabs(y[a][l]);
                d0 += (y[a][l]/sc)*(y[a][l]/sc); d1 += (K[0][a][l]/sc)*(K[0][a][l]/sc); }
            d0 = sqrt(d0/2); d1 = sqrt(d1/2);
            h[l] = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01*d0/d1;
        }
        while (left) {
            for (int l = 0; l < LW; l++) hh[l] = !live[l] ? 0 : t[l] + h[l]*(1+1e-9) < T ? h[l] : T - t[l];
            for (int s = 1; s < 7; s++) {
                #pragma omp simd
                for (int l = 0; l < LW; l++) {
                    for (int a = 0; a < 2; a++) { double acc = 0;
                        for (int j = 0; j < s; j++) acc += A[s][j]*K[j][a][l];
                        yt[a][l] = y[a][l] + hh[l]*acc; }
                    f2(lr, yt[0][l], yt[1][l], &K[s][0][l], &K[s][1][l]);
                }
            }
            #pragma omp simd
            for (int l = 0; l < LW; l++) {
                double q = 0;
                for (int a = 0; a < 2; a++) { double acc = 0;
                    for (int j = 0; j < 7; j++) acc += E[j]*K[j][a][l];
                    double sc = atol + rtol*fmax(fabs(y[a][l]), fabs(yt[a][l]));
                    q += (hh[l]*acc/sc)*(hh[l]*acc/sc); }
                e[l] = sqrt(q/2);
            }
            for (int l = 0; l < LW; l++) {
                if (!live[l]) continue;
                nf[l] += 6;
                if (!(e[l] <= 1)) { h[l] = hh[l]*fmax(0.2, 0.9*pow(e[l], -0.17)); rej[l] = 1; continue; }
                double fac = e[l] == 0 ? 10 : 0.9*pow(e[l], -0.17)*pow(errold[l], 0.04);
                fac = fmin(rej[l] ? 1 : 10, fmax(0.2, fac)); errold[l] = fmax(e[l], 1e-4); rej[l] = 0;
                if (hh[l] == h[l] || fac < 1) h[l] = hh[l]*fac;
                t[l] = hh[l] == T - t[l] ? T : t[l] + hh[l];
                for (int a = 0; a < 2; a++) { y[a][l] = yt[a][l]; K[0][a][l] = K[6][a][l]; }
                if (t[l] >= T) { live[l] = 0; left--; }
            }
        }
        for (int l = 0; l < LW && p0 + l < n; l++) {
            out[2*(p0+l)] = y[0][l]; out[2*(p0+l)+1] = y[1][l]; nfev[p0+l] = nf[l];
        }
    }
}

/* (c) in lanes: the tracked PF on the double well, LW trajectories together, complex values
   split into real and imaginary arrays. The field over a block in three loops the compiler
   vectorises (the arguments; glibc's vector log1p, log and atan2 alone, declared for `omp simd`
   where flowcore's kernels find libmvec, FC_MVEC: GCC vectorises a loop with calls only if
   nothing in it needs if-converting; the rest): log(1 - z) as 1/2 log1p(|1 - z|^2 - 1) near
   z = 0 and 1/2 log|1 - z|^2 elsewhere (phi = L/z keeps its digits without a series), its
   imaginary part continued from the last accepted step (the branch nearest it; a real start past
   z = 1 on the +i pi side); the y-direction's z = 2h is constant: its log once. Singular where
   |1 - z| < 1e-12 (the step is rejected), escaped past R. The stages and the error norm in loops
   over the lanes, the step control lane by lane with run's controller (glibc's pow); a block
   runs until its last lane ends (no refilling). */
#ifdef FC_MVEC
#pragma omp declare simd notinbranch
double v_log(double) __asm__("log");
#pragma omp declare simd notinbranch
double v_log1p(double) __asm__("log1p");
#pragma omp declare simd notinbranch
double v_atan2(double, double) __asm__("atan2");
#else
#define v_log log
#define v_log1p log1p
#define v_atan2 atan2
#endif
typedef struct { double xr[LW], xi[LW], yr[LW], yi[LW]; } pf_v;
/* f(s) with the logs continued from lbi (the x-direction's Im L at the last accepted step); Li: this
   evaluation's Im L; bad: 1 where |1 - z| < 1e-12 */
static inline void pf_lanes(double h, double cyr, double cyi, const pf_v *s, const double *lbi, pf_v *f,
                            double *Li, int *bad) {
    double ZR[LW], ZI[LW], ARG[LW], N2[LW], WR[LW], WI[LW], LG[LW], LN[LW], AT[LW];
    #pragma omp simd
    for (int l = 0; l < LW; l++) {
        const double xr = s->xr[l], xi = s->xi[l], zr = h*(12*(xr*xr - xi*xi) - 4), zi = h*24*xr*xi;
        ZR[l] = zr; ZI[l] = zi; WR[l] = 1 - zr; WI[l] = -zi + 0.0;   /* w = 1 - z, a zero Im +0 */
        ARG[l] = zr*(zr - 2) + zi*zi; N2[l] = WR[l]*WR[l] + WI[l]*WI[l];
    }
    #pragma omp simd
    for (int l = 0; l < LW; l++) { LG[l] = v_log1p(ARG[l]); LN[l] = v_log(N2[l]); AT[l] = v_atan2(WI[l], WR[l]); }
    #pragma omp simd
    for (int l = 0; l < LW; l++) {
        const double xr = s->xr[l], xi = s->xi[l], zr = ZR[l], zi = ZI[l];
        const double lr = 0.5*(fabs(ARG[l]) < 0.5 ? LG[l] : LN[l]);
        const int past = lbi[l] == 0 && zr > 1;                  /* from the real sheet past z = 1 */
        const double li = past ? (AT[l] < 0 ? AT[l] + 2*M_PI : AT[l]) : AT[l] + 2*M_PI*nearbyint((lbi[l] - AT[l]) / (2*M_PI));
        const double d = zr*zr + zi*zi, dd = d > 0 ? d : 1;
        const double pr = d > 0 ? (lr*zr + li*zi) / dd : -1, pi = d > 0 ? (li*zr - lr*zi) / dd : 0;
        const double gr = 4*(xr*(xr*xr - 3*xi*xi) - xr), gi = 4*(xi*(3*xr*xr - xi*xi) - xi);
        f->xr[l] = pr*gr - pi*gi; f->xi[l] = pr*gi + pi*gr;
        f->yr[l] = 2*(cyr*s->yr[l] - cyi*s->yi[l]); f->yi[l] = 2*(cyr*s->yi[l] + cyi*s->yr[l]);
        Li[l] = li;
        bad[l] |= N2[l] < 1e-24;
    }
}
static inline double pf_enorm(const pf_v *e, const pf_v *y, const pf_v *yn, int l, double rtol, double atol) {
    const double ax = sqrt(e->xr[l]*e->xr[l] + e->xi[l]*e->xi[l]), ay = sqrt(e->yr[l]*e->yr[l] + e->yi[l]*e->yi[l]);
    const double yx = sqrt(y->xr[l]*y->xr[l] + y->xi[l]*y->xi[l]), yy = sqrt(y->yr[l]*y->yr[l] + y->yi[l]*y->yi[l]);
    const double nx = yn ? sqrt(yn->xr[l]*yn->xr[l] + yn->xi[l]*yn->xi[l]) : 0;
    const double ny = yn ? sqrt(yn->yr[l]*yn->yr[l] + yn->yi[l]*yn->yi[l]) : 0;
    const double sx = atol + rtol*(yx > nx ? yx : nx), sy = atol + rtol*(yy > ny ? yy : ny);
    return sqrt(((ax/sx)*(ax/sx) + (ay/sy)*(ay/sy)) / 2);
}
void run_pf_lanes(int64_t n, const double *y0, double T, double lr, double rtol, double atol, double R,
                  double *out, int64_t *nfev, int *escaped) {
    const double cyr = log(fabs(1 - 2*lr)) / (2*lr), cyi = 1 - 2*lr < 0 ? M_PI / (2*lr) : 0;
    for (int64_t p0 = 0; p0 < n; p0 += LW) {
        pf_v y, K[8], yt, d;
        double t[LW], h[LW], hh[LW], errold[LW], e[LW], lbi[LW], lni[LW], ls[LW];
        int rej[LW], live[LW], bad[LW], esc[LW], left = 0;
        int64_t nf[LW];
        for (int l = 0; l < LW; l++) {
            const int64_t i = p0 + l < n ? p0 + l : p0;
            y.xr[l] = y0[2*i]; y.yr[l] = y0[2*i+1]; y.xi[l] = y.yi[l] = 0;
            t[l] = 0; errold[l] = 1e-4; rej[l] = 0; nf[l] = 2; live[l] = p0 + l < n; left += live[l];
            esc[l] = 0; bad[l] = 0;
            lbi[l] = 0;
        }
        pf_lanes(lr, cyr, cyi, &y, lbi, &K[0], lbi, bad);      /* principal logs start the tracking */
        for (int l = 0; l < LW; l++) {                           /* Hairer's initial step, as run_pf */
            const double d0 = pf_enorm(&y, &y, 0, l, rtol, atol), d1 = pf_enorm(&K[0], &y, 0, l, rtol, atol);
            h[l] = fmin((d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01*d0/d1, T);
            yt.xr[l] = y.xr[l] + h[l]*K[0].xr[l]; yt.xi[l] = y.xi[l] + h[l]*K[0].xi[l];
            yt.yr[l] = y.yr[l] + h[l]*K[0].yr[l]; yt.yi[l] = y.yi[l] + h[l]*K[0].yi[l];
        }
        pf_lanes(lr, cyr, cyi, &yt, lbi, &K[7], ls, bad);
        for (int l = 0; l < LW; l++) {
            d.xr[l] = K[7].xr[l] - K[0].xr[l]; d.xi[l] = K[7].xi[l] - K[0].xi[l];
            d.yr[l] = K[7].yr[l] - K[0].yr[l]; d.yi[l] = K[7].yi[l] - K[0].yi[l];
            const double d1 = pf_enorm(&K[0], &y, 0, l, rtol, atol), d2 = pf_enorm(&d, &y, 0, l, rtol, atol) / h[l];
            h[l] = (d1 <= 1e-15 && d2 <= 1e-15) ? fmax(1e-6, h[l]*1e-3) : fmin(100*h[l], pow(0.01/fmax(d1, d2), 0.2));
            bad[l] = 0;
        }
        while (left) {
            for (int l = 0; l < LW; l++) { hh[l] = !live[l] ? 0 : t[l] + h[l]*(1+1e-9) < T ? h[l] : T - t[l]; bad[l] = 0; }
            for (int s = 1; s < 7; s++) {
                #pragma omp simd
                for (int l = 0; l < LW; l++) {
                    double axr = 0, axi = 0, ayr = 0, ayi = 0;
                    for (int j = 0; j < s; j++) {
                        axr += A[s][j]*K[j].xr[l]; axi += A[s][j]*K[j].xi[l];
                        ayr += A[s][j]*K[j].yr[l]; ayi += A[s][j]*K[j].yi[l];
                    }
                    yt.xr[l] = y.xr[l] + hh[l]*axr; yt.xi[l] = y.xi[l] + hh[l]*axi;
                    yt.yr[l] = y.yr[l] + hh[l]*ayr; yt.yi[l] = y.yi[l] + hh[l]*ayi;
                }
                pf_lanes(lr, cyr, cyi, &yt, lbi, &K[s], s == 6 ? lni : ls, bad);
            }
            #pragma omp simd
            for (int l = 0; l < LW; l++) {
                double exr = 0, exi = 0, eyr = 0, eyi = 0;
                for (int j = 0; j < 7; j++) {
                    exr += E[j]*K[j].xr[l]; exi += E[j]*K[j].xi[l]; eyr += E[j]*K[j].yr[l]; eyi += E[j]*K[j].yi[l];
                }
                d.xr[l] = hh[l]*exr; d.xi[l] = hh[l]*exi; d.yr[l] = hh[l]*eyr; d.yi[l] = hh[l]*eyi;
                e[l] = pf_enorm(&d, &y, &yt, l, rtol, atol);
            }
            for (int l = 0; l < LW; l++) {
                if (!live[l]) continue;
                nf[l] += 6;
                if (bad[l] || !(e[l] <= 1)) {
                    h[l] = bad[l] ? 0.25*hh[l] : hh[l]*fmax(0.2, 0.9*pow(e[l], -0.17)); rej[l] = 1;
                    if (h[l] < 10*2.220446049250313e-16*fmax(t[l], 1.0)) { live[l] = 0; left--; }
                    continue;
                }
                double fac = e[l] == 0 ? 10 : 0.9*pow(e[l], -0.17)*pow(errold[l], 0.04);
                fac = fmin(rej[l] ? 1 : 10, fmax(0.2, fac)); errold[l] = fmax(e[l], 1e-4); rej[l] = 0;
                if (hh[l] == h[l] || fac < 1) h[l] = hh[l]*fac;
                t[l] = hh[l] == T - t[l] ? T : t[l] + hh[l];
                y.xr[l] = yt.xr[l]; y.xi[l] = yt.xi[l]; y.yr[l] = yt.yr[l]; y.yi[l] = yt.yi[l];
                K[0].xr[l] = K[6].xr[l]; K[0].xi[l] = K[6].xi[l]; K[0].yr[l] = K[6].yr[l]; K[0].yi[l] = K[6].yi[l];
                lbi[l] = lni[l];
                const double r2 = y.xr[l]*y.xr[l] + y.xi[l]*y.xi[l] + y.yr[l]*y.yr[l] + y.yi[l]*y.yi[l];
                if (r2 > R*R) { esc[l] = 1; live[l] = 0; left--; }
                else if (t[l] >= T) { live[l] = 0; left--; }
            }
        }
        for (int l = 0; l < LW && p0 + l < n; l++) {
            out[4*(p0+l)] = y.xr[l]; out[4*(p0+l)+1] = y.xi[l]; out[4*(p0+l)+2] = y.yr[l]; out[4*(p0+l)+3] = y.yi[l];
            nfev[p0+l] = nf[l]; escaped[p0+l] = esc[l];
        }
    }
}
"""


def plain_c():
    lib = compile_c(PLAIN_C, "igr")
    lanes = compile_c(LANES_C, "igr_lanes", native=True)
    P = ctypes.POINTER(ctypes.c_double)
    for fn in (lib.run, lanes.run_lanes):
        fn.argtypes = [ctypes.c_int64, P, ctypes.c_double, ctypes.c_double, ctypes.c_double,
                       ctypes.c_double, P, ctypes.POINTER(ctypes.c_int64)]
    lib.run_pf.argtypes = [ctypes.c_int64, P, ctypes.c_double, ctypes.c_double, ctypes.c_double,
                           ctypes.c_double, ctypes.c_double, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def igr(fn):
        def run(y0, T, lr):
            y0 = np.ascontiguousarray(y0)
            out, nf = np.empty_like(y0), np.empty(len(y0), np.int64)
            fn(len(y0), y0.ctypes.data_as(P), T, lr, RTOL, ATOL, out.ctypes.data_as(P),
               nf.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)))
            return out
        return run
    run, run_lanes = igr(lib.run), igr(lanes.run_lanes)

    D = ctypes.c_double
    lib.run_pf_quad.argtypes = [ctypes.c_int64, P, D, D, D, D, D, D, D, D] + [ctypes.c_void_p] * 3

    def run_pf(y0, T, lr, quadratic=None):
        """(final states, escaped) of the tracked PF: on the double well, or on ½θᵀAθ with
        quadratic = (A00, A01, A11)."""
        y0 = np.ascontiguousarray(y0, dtype=float)
        out, nf, esc = np.empty(y0.shape, complex), np.empty(len(y0), np.int64), np.empty(len(y0), np.intc)
        if quadratic is None:
            lib.run_pf(len(y0), y0.ctypes.data_as(P), T, lr, RTOL, ATOL, RADIUS, out.ctypes.data, nf.ctypes.data,
                       esc.ctypes.data)
        else:
            lib.run_pf_quad(len(y0), y0.ctypes.data_as(P), T, lr, *quadratic, RTOL, ATOL, RADIUS, out.ctypes.data,
                            nf.ctypes.data, esc.ctypes.data)
        return out, esc.astype(bool)

    lanes.run_pf_lanes.argtypes = [ctypes.c_int64, P, D, D, D, D, D] + [ctypes.c_void_p] * 3

    def run_pf_lanes(y0, T, lr):
        """(final states, escaped) of the tracked PF on the double well, in lanes."""
        y0 = np.ascontiguousarray(y0, dtype=float)
        out, nf, esc = np.empty(y0.shape, complex), np.empty(len(y0), np.int64), np.empty(len(y0), np.intc)
        lanes.run_pf_lanes(len(y0), y0.ctypes.data_as(P), T, lr, RTOL, ATOL, RADIUS, out.ctypes.data, nf.ctypes.data,
                           esc.ctypes.data)
        return out, esc.astype(bool)
    return run, run_pf, run_lanes, run_pf_lanes


def scipy_ratios(row, flow, th0, T, n, t_fc):
    """solve_ivp per trajectory (a sample, extrapolated) and on the stacked system (a slice)."""
    ns = 20
    def per_traj():
        for y in th0[:ns]:
            solve_ivp(lambda t, y: flow(y[None])[0], (0, T), y.astype(complex) if flow.is_complex else y,
                      rtol=RTOL, atol=ATOL)
    t_pt = median_time(per_traj, repeats=3, min_time=0) * n / ns
    row["× solve_ivp per traj"] = t_pt / t_fc
    # solve_ivp on the stacked system
    y0s = (th0.astype(complex) if flow.is_complex else th0).ravel()
    ms = min(n, 20_000)                              # time a slice, scale linearly
    y0s_small = y0s[: 2 * ms]
    t_st = median_time(lambda: solve_ivp(lambda t, y: flow(y.reshape(-1, 2)).ravel(), (0, T),
                                         y0s_small, rtol=RTOL, atol=ATOL),
                       repeats=3, min_time=0) * n / ms
    row["× solve_ivp stacked"] = t_st / t_fc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved (flowcore 1 thread, C) pairs for the "
                    "ratio, timed by CPU time (default 5)")
    args = ap.parse_args(argv)
    n = 5_000 if args.quick else args.n
    repeats = 1 if args.quick else args.repeats
    pairs = 1 if args.quick else args.pairs
    rng = np.random.default_rng(0)
    T = 2.0
    dw = fc.losses.double_well()
    quad = fc.losses.quadratic(np.array([[QUAD[0], QUAD[1]], [QUAD[1], QUAD[2]]]))   # h = 0.25: hλ_max ≈ 1.6
    problems = [
        ("(a) IGR double well, real", fc.flows.igr(dw, 0.1), None, rng.uniform(-1.5, 1.5, (n, 2))),
        ("(b) PF quadratic hλmax≈1.6", fc.flows.pf(quad, 0.25), None, rng.uniform(-2, 2, (n, 2))),
        ("(c) PF double well, tracked", fc.flows.pf(dw, 0.4), "n/a", rng.uniform(-1.3, 1.3, (n, 2))),
    ]
    try:
        import diffrax  # noqa: F401
        have_diffrax = True
    except ImportError:
        have_diffrax = False
    rows = []
    c_run, c_pf, c_lanes, c_pf_lanes = plain_c()
    for label, flow, principal, th0 in problems:
        kw = dict(t_span=(0, T), escape_radius=RADIUS, progress=False)   # no bar inside timings
        ref = fc.solve(flow, th0, method=fc.Dop853(rtol=1e-12, atol=1e-14), **kw)
        sol = fc.solve(flow, th0, method=fc.Dopri5(rtol=RTOL, atol=ATOL), **kw)
        both = (ref.status == fc.Status.OK) & (sol.status == fc.Status.OK)
        err = float(np.max(np.abs(sol.y[both, -1] - ref.y[both, -1])))
        t2 = median_time(lambda: fc.solve(flow, th0, method=fc.Dopri5(rtol=RTOL, atol=ATOL),
                                          compute=fc.Compute(threads=2), **kw),
                         repeats=repeats, min_time=0)
        def one_thread():
            return fc.solve(flow, th0, method=fc.Dopri5(rtol=RTOL, atol=ATOL), compute=fc.Compute(threads=1), **kw)
        t1 = median_time(one_thread, repeats=repeats, min_time=0)
        row = {"problem": label, "N": n, "flowcore 2 thr [s]": t2, "2-thread speed-up": t1 / t2,
               "mean nfev": float(np.mean(sol.nfev)), "flowcore max err": err,
               "statuses": sol.message}
        if principal == "n/a":
            row["× solve_ivp per traj"] = row["× solve_ivp stacked"] = "n/a (no branch state)"
        else:
            scipy_ratios(row, flow, th0, T, n, t2)
        if label.startswith("(a)"):
            _, tc, row["flowcore 1 thr / C"] = paired_times(one_thread, lambda: c_run(th0, T, 0.1), pairs)
            cerr = float(np.max(np.abs(c_run(th0, T, 0.1)[both] - ref.y[both, -1])))
            row["plain C (1 thr) [s]"] = tc
            row["C max err"] = cerr
            # lanes: against the lane-interleaved C, and against the same kernel built at W = 1
            _, tl, row["flowcore 1 thr / C lanes"] = paired_times(one_thread, lambda: c_lanes(th0, T, 0.1), pairs)
            row["C lanes (1 thr) [s]"] = tl
            row["C lanes max err"] = float(np.max(np.abs(c_lanes(th0, T, 0.1)[both] - ref.y[both, -1])))
            with lanes_env(1):
                one_thread()          # build
                t_w1 = median_time(one_thread, repeats=repeats, min_time=0)
            row["flowcore W=1 (1 thr) [s]"] = t_w1
            row["W=1 / lanes (1 thr)"] = t_w1 / t1
        else:
            lr, quad_h = (0.25, QUAD) if label.startswith("(b)") else (0.4, None)
            _, tc, row["flowcore 1 thr / C"] = paired_times(one_thread, lambda: c_pf(th0, T, lr, quad_h), pairs)
            yc, esc = c_pf(th0, T, lr, quad_h)
            ok = both & ~esc
            row["plain C (1 thr) [s]"] = tc
            row["C max err"] = float(np.max(np.abs(yc[ok] - ref.y[ok, -1])))
            row["C escaped = flowcore escaped"] = bool(np.array_equal(esc, sol.status == fc.Status.ESCAPED))
            row["|C − flowcore| max"] = float(np.max(np.abs(yc[ok] - sol.y[ok, -1])))
            if quad_h is None:          # (c): against the lane-interleaved C
                _, tl, row["flowcore 1 thr / C lanes"] = paired_times(one_thread, lambda: c_pf_lanes(th0, T, lr), pairs)
                yl, escl = c_pf_lanes(th0, T, lr)
                okl = both & ~escl
                row["C lanes (1 thr) [s]"] = tl
                row["C lanes max err"] = float(np.max(np.abs(yl[okl] - ref.y[okl, -1])))
                row["C lanes escaped = flowcore escaped"] = bool(np.array_equal(escl, sol.status == fc.Status.ESCAPED))
        row["diffrax"] = "not installed" if not have_diffrax else "see bench extra"
        rows.append(row)
    cols = ["problem", "N", "statuses", "flowcore 2 thr [s]", "2-thread speed-up", "mean nfev", "flowcore max err",
            "× solve_ivp per traj", "× solve_ivp stacked", "plain C (1 thr) [s]", "flowcore 1 thr / C",
            "C lanes (1 thr) [s]", "flowcore 1 thr / C lanes", "C lanes max err", "flowcore W=1 (1 thr) [s]",
            "W=1 / lanes (1 thr)",
            "C max err", "C escaped = flowcore escaped", "C lanes escaped = flowcore escaped", "|C − flowcore| max",
            "diffrax"]
    print(table(rows, cols))
    print("JSON:", write_json("solve", rows, n=n, repeats=repeats, rtol=RTOL, atol=ATOL, T=T))


if __name__ == "__main__":
    main()
