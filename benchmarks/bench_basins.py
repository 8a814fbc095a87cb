"""Basins of attraction: fa.basins against a numpy-vectorised loop and a plain C loop, in one run.

Problems on the 2-D double well E = (x² − 1)² + y², starts on a square grid over [−2, 2]²:
  (a) GD, h = 0.1, 1000 × 1000 starts, at most 1000 iterations
  (b) IGR flow, h = 0.1, 500 × 500 starts, RK4 with dt = 0.05 to T = 20
  (c) PF, h = 0.2, 300 × 300 starts, RK4 with dt = 0.02 to T = 20 (complex)

Every contender computes the same label image: the attractor each start ends at (nearest
critical point within 1e-4), or escaped / unresolved. GD: flowcore and the C loop run fa.basins'
whole rest test (a recurrence ‖θ_k − θ_{k−p}‖∞ ≤ 1e-10(1 + ‖θ_k‖∞), p ≤ 16, held for 50
iterations, so 2-cycles and longer are found); a second C loop tests p = 1 alone (the price of
cycle detection); the numpy loop runs the whole budget (masking stopped starts costs numpy more
than it saves). Flows: all run the same
fixed-step RK4 (flowcore: ``method="rk4"``); flowcore and C stop a start once ‖f‖∞ ≤
1e-8(1 + ‖θ‖∞) has held for 8 steps (fa.basins' rest test), numpy runs to T. For the PF all three continue the log along each path
(the pointwise principal log chatters between ±iπ on the cut and gives wrong labels); numpy and C
use that H is diagonal on this loss, flowcore runs its general 2×2 kernel (eigenvalues, divided
differences, eigenvector matching).
Reports medians of repeats (numpy's IGR and PF loops take minutes: one run each), the label
agreement with flowcore, and the 2-thread speed-ups of flowcore and of the C loop (OpenMP, the
same dynamic schedule; median of interleaved 1- and 2-thread runs by wall time); flowcore's 1-thread time against C as the
median ratio of interleaved pairs (--pairs) timed by CPU time, which a shared machine's slow
spells and preemptions move least.

    python benchmarks/bench_basins.py [--quick] [--repeats 3] [--pairs 7]
"""
import argparse
import ctypes
import time

import numpy as np

import flowcore as fc
from flowcore import analysis as fa
from _common import GD_REST, compile_c, median_time, paired_times, table, write_json

RADIUS = 1e6
from flowcore.analysis.basins import REST_FRACTION as REST     # the flows' rest test, as fa.basins
MINIMA = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])       # labels 0, 1 and the saddle, 2

PLAIN_C = r"""
#include <math.h>
#include <complex.h>
#include <stdint.h>
#define ESC (-1)
#define UNRES (-2)
#define MAX(a, b) ((a) > (b) ? (a) : (b))   /* finite arguments: a compare, not fmax's library call */
#define REST_STEPS 8                        /* flows: stop once |f| <= rest_tol(1 + |y|) held this long */
static const double CP[3][2] = {{-1, 0}, {1, 0}, {0, 0}};
static int label_of(double x, double y) {
    for (int c = 0; c < 3; c++)
        if (fmax(fabs(x - CP[c][0]), fabs(y - CP[c][1])) <= 1e-4 * (1 + fabs(CP[c][0]))) return c;
    return UNRES;
}
/* (a) GD with the same rest test as fa.basins (recurrence held for `confirm` steps) */
void gd(int64_t n, const double *th, double h, int steps, int confirm, double tol, double R, int *lab) {
    for (int64_t p = 0; p < n; p++) {
        double x = th[2*p], y = th[2*p+1];
        int streak = 0, l = UNRES;
        for (int k = 0; k < steps; k++) {
            double nx = x - h * 4 * x * (x*x - 1), ny = y - h * 2 * y;
            double d = MAX(fabs(nx - x), fabs(ny - y)), s = MAX(fabs(nx), fabs(ny));
            x = nx; y = ny;
            if (!(sqrt(x*x + y*y) <= R)) { l = ESC; break; }
            streak = d <= tol * (1 + s) ? streak + 1 : 0;
            if (streak >= confirm) { l = label_of(x, y); break; }
        }
        lab[p] = l;
    }
}
/* (a) GD in SIMD lanes (issue 35's reference): 8 starts advance in lockstep for every step (no
   early stop: a lane that escaped overflows to inf/NaN harmlessly), the structure-of-arrays loop
   over lanes vectorised by the compiler; at the end each lane is a fixed point (p = 1 recurrence),
   a 2-cycle (p = 2), escaped or unresolved. The work a lane kernel would do without refilling. */
#define LANES 8
void gd_lanes(int64_t n, const double *th, double h, int steps, double tol, double R, int *lab, int threads) {
    const int64_t blocks = (n + LANES - 1) / LANES;
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads) if (threads > 1)
    for (int64_t b = 0; b < blocks; b++) {
        double x[LANES], y[LANES], x1[LANES], y1[LANES], x2[LANES], y2[LANES];
        for (int l = 0; l < LANES; l++) {
            const int64_t i = b * LANES + l < n ? b * LANES + l : n - 1;
            x[l] = th[2*i]; y[l] = th[2*i+1]; x1[l] = y1[l] = x2[l] = y2[l] = 0;
        }
        for (int k = 0; k < steps; k++) {
#pragma omp simd
            for (int l = 0; l < LANES; l++) {
                x2[l] = x1[l]; y2[l] = y1[l]; x1[l] = x[l]; y1[l] = y[l];
                const double gx = 4 * x[l] * (x[l]*x[l] - 1), gy = 2 * y[l];
                x[l] -= h * gx; y[l] -= h * gy;
            }
        }
        for (int l = 0; l < LANES && b * LANES + l < n; l++) {
            const double s = MAX(fabs(x[l]), fabs(y[l]));
            int v = UNRES;
            if (!(sqrt(x[l]*x[l] + y[l]*y[l]) <= R)) v = ESC;
            else if (MAX(fabs(x[l] - x1[l]), fabs(y[l] - y1[l])) <= tol * (1 + s)) v = label_of(x[l], y[l]);
            else if (MAX(fabs(x[l] - x2[l]), fabs(y[l] - y2[l])) <= tol * (1 + s)) v = -3;   /* CYCLE */
            lab[b * LANES + l] = v;
        }
    }
}
#define FN static inline
""" + GD_REST + r"""
/* (a) GD with fa.basins' whole rest test (_common.GD_REST); cycles get the label CYCLE */
#define CYCLE (-3)
void gd_periods(int64_t n, const double *th, double h, int steps, int confirm, double tol, double R,
                int *lab, int threads) {
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < n; i++) {
        double cur[2] = {th[2*i], th[2*i+1]};
        const int period = gd_rest(cur, h, steps, confirm, tol, R);
        lab[i] = period == 1 ? label_of(cur[0], cur[1]) : period > 1 ? CYCLE : period < 0 ? ESC : UNRES;
    }
}
/* (b) IGR: f = -(I + (h/2) H) g, fixed-step RK4 */
static void igr(double h, double x, double y, double *fx, double *fy) {
    double gx = 4*x*(x*x - 1), gy = 2*y;
    *fx = -gx - 0.5*h*(12*x*x - 4)*gx; *fy = -gy - 0.5*h*2*gy;
}
void igr_rk4(int64_t n, const double *th, double h, double dt, int nsteps, double R, double tol,
             double rest_tol, int *lab, int threads) {
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads) if (threads > 1)
    for (int64_t p = 0; p < n; p++) {
        double x = th[2*p], y = th[2*p+1], k1x, k1y, k2x, k2y, k3x, k3y, k4x, k4y;
        int l = 0, streak = 0;
        for (int k = 0; k < nsteps; k++) {
            igr(h, x, y, &k1x, &k1y);
            if (k > 0) {
                streak = MAX(fabs(k1x), fabs(k1y)) <= rest_tol * (1 + MAX(fabs(x), fabs(y))) ? streak + 1 : 0;
                if (streak >= REST_STEPS) break;
            }
            igr(h, x + 0.5*dt*k1x, y + 0.5*dt*k1y, &k2x, &k2y);
            igr(h, x + 0.5*dt*k2x, y + 0.5*dt*k2y, &k3x, &k3y);
            igr(h, x + dt*k3x, y + dt*k3y, &k4x, &k4y);
            x += dt/6*(k1x + 2*k2x + 2*k3x + k4x); y += dt/6*(k1y + 2*k2y + 2*k3y + k4y);
            if (!(sqrt(x*x + y*y) <= R)) { l = ESC; break; }
        }
        if (l != ESC) {
            igr(h, x, y, &k1x, &k1y);
            l = fmax(fabs(k1x), fabs(k1y)) <= tol * (1 + fmax(fabs(x), fabs(y))) ? label_of(x, y) : UNRES;
        }
        lab[p] = l;
    }
}
/* (b) in SIMD lanes (issue 35's reference): 16 starts step together, structure of arrays, the
   loop over lanes vectorised; a lane at rest or escaped stops moving (a select), and the block
   runs until its last lane stops (no refilling). The same rest test and labels as igr_rk4. */
#define FLOW_LANES 16
void igr_rk4_lanes(int64_t n, const double *th, double h, double dt, int nsteps, double R, double tol,
                   double rest_tol, int *lab, int threads) {
    const int64_t blocks = (n + FLOW_LANES - 1) / FLOW_LANES;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) if (threads > 1)
    for (int64_t b = 0; b < blocks; b++) {
        double x[FLOW_LANES], y[FLOW_LANES];
        int streak[FLOW_LANES], state[FLOW_LANES];    /* 0: moving, 1: at rest, ESC */
        for (int l = 0; l < FLOW_LANES; l++) {
            const int64_t i = b * FLOW_LANES + l < n ? b * FLOW_LANES + l : n - 1;
            x[l] = th[2*i]; y[l] = th[2*i+1]; streak[l] = state[l] = 0;
        }
        for (int k = 0; k < nsteps; k++) {
            int moving = 0;
#pragma omp simd reduction(|:moving)
            for (int l = 0; l < FLOW_LANES; l++) {
                double k1x, k1y, k2x, k2y, k3x, k3y, k4x, k4y;
                igr(h, x[l], y[l], &k1x, &k1y);
                const int rest = MAX(fabs(k1x), fabs(k1y)) <= rest_tol * (1 + MAX(fabs(x[l]), fabs(y[l])));
                streak[l] = k > 0 && rest ? streak[l] + 1 : 0;
                const int go = state[l] == 0 && streak[l] < REST_STEPS;
                igr(h, x[l] + 0.5*dt*k1x, y[l] + 0.5*dt*k1y, &k2x, &k2y);
                igr(h, x[l] + 0.5*dt*k2x, y[l] + 0.5*dt*k2y, &k3x, &k3y);
                igr(h, x[l] + dt*k3x, y[l] + dt*k3y, &k4x, &k4y);
                const double xn = x[l] + dt/6*(k1x + 2*k2x + 2*k3x + k4x), yn = y[l] + dt/6*(k1y + 2*k2y + 2*k3y + k4y);
                x[l] = go ? xn : x[l];
                y[l] = go ? yn : y[l];
                state[l] = go && !(sqrt(xn*xn + yn*yn) <= R) ? ESC : state[l] == 0 && !go ? 1 : state[l];
                moving |= state[l] == 0;
            }
            if (!moving) break;
        }
        for (int l = 0; l < FLOW_LANES && b * FLOW_LANES + l < n; l++) {
            double fx, fy;
            igr(h, x[l], y[l], &fx, &fy);
            lab[b * FLOW_LANES + l] = state[l] == ESC ? ESC
                : MAX(fabs(fx), fabs(fy)) <= tol * (1 + MAX(fabs(x[l]), fabs(y[l]))) ? label_of(x[l], y[l]) : UNRES;
        }
    }
}
/* (c) PF: H is diagonal here (Hxy = 0), so alpha(hH)g acts per coordinate. The x-direction's
   log(1 - z) is continued along the path: the branch nearest the value at the step's start
   (on the real axis past z = 1, the +i*pi side, as flowcore); y has z = 2h < 1, no cut. */
static double complex log1m_near(double complex z, double complex prev) {
    double complex w = 1 - z;
    if (cimag(w) == 0) w = CMPLX(creal(w), 0.0);
    double complex L = clog(w);
    return L + 2 * M_PI * I * round((cimag(prev) - cimag(L)) / (2 * M_PI));
}
static double complex alpha_x(double complex z, double complex prev, double complex *L) {
    *L = log1m_near(z, prev);
    return cabs(z) < 1e-8 ? -1 - z/2 : *L / z;
}
static void pf(double h, double complex x, double complex y, double complex prev, double complex *fx,
               double complex *fy, double complex *L) {
    double complex z = h*(12*x*x - 4);
    *fx = alpha_x(z, prev, L) * 4*x*(x*x - 1);
    *fy = (log(1 - 2*h) / (2*h)) * 2*y;
}
void pf_rk4(int64_t n, const double *th, double h, double dt, int nsteps, double R, double tol,
            double rest_tol, double imag_tol, int *lab, int threads) {
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads) if (threads > 1)
    for (int64_t p = 0; p < n; p++) {
        double complex x = th[2*p], y = th[2*p+1], k1x, k1y, k2x, k2y, k3x, k3y, k4x, k4y, L, Ls;
        double complex prev = cimag(1 - h*(12*x*x - 4)) == 0 && creal(h*(12*x*x - 4)) > 1 ? I*M_PI : 0;
        int l = 0, streak = 0;
        for (int k = 0; k < nsteps; k++) {
            pf(h, x, y, prev, &k1x, &k1y, &L);
            prev = L;
            if (k > 0) {
                streak = MAX(cabs(k1x), cabs(k1y)) <= rest_tol * (1 + MAX(cabs(x), cabs(y))) ? streak + 1 : 0;
                if (streak >= REST_STEPS) break;
            }
            pf(h, x + 0.5*dt*k1x, y + 0.5*dt*k1y, prev, &k2x, &k2y, &Ls);
            pf(h, x + 0.5*dt*k2x, y + 0.5*dt*k2y, prev, &k3x, &k3y, &Ls);
            pf(h, x + dt*k3x, y + dt*k3y, prev, &k4x, &k4y, &Ls);
            x += dt/6*(k1x + 2*k2x + 2*k3x + k4x); y += dt/6*(k1y + 2*k2y + 2*k3y + k4y);
            if (!(sqrt(creal(x*conj(x) + y*conj(y))) <= R)) { l = ESC; break; }
        }
        if (l != ESC) {
            pf(h, x, y, prev, &k1x, &k1y, &L);
            int rest = fmax(cabs(k1x), cabs(k1y)) <= tol * (1 + fmax(cabs(x), cabs(y)));
            int real = fmax(fabs(cimag(x)), fabs(cimag(y))) <= imag_tol;
            l = rest && real ? label_of(creal(x), creal(y)) : UNRES;
        }
        lab[p] = l;
    }
}
/* (c) in SIMD lanes (issue 35's reference for the PF): 16 starts step together, complex values
   split into real and imaginary arrays, the field over the block in three loops the compiler
   vectorises (the arguments; glibc's vector log1p, log and atan2 alone, declared for `omp simd`
   where flowcore's kernels find libmvec, FC_MVEC: GCC vectorises a loop with calls only if
   nothing in it needs if-converting; the rest), the same branch rule and rest test as pf_rk4;
   phi = L/z with Re L = 1/2 log1p(|1 - z|^2 - 1) near z = 0 (its digits kept without a series,
   as flowcore), 1/2 log|1 - z|^2 elsewhere; a lane at rest or escaped stops moving, the block
   runs until its last lane stops (no refilling). */
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
#define PF_LANES 16
typedef struct { double xr[PF_LANES], xi[PF_LANES], yr[PF_LANES], yi[PF_LANES]; } pf_vec;
static inline void pf_block(double h, double cy, const pf_vec *s, const double *lpi, pf_vec *f, double *Li) {
    double ZR[PF_LANES], ZI[PF_LANES], WR[PF_LANES], WI[PF_LANES], ARG[PF_LANES], N2[PF_LANES];
    double LG[PF_LANES], LN[PF_LANES], AT[PF_LANES];
#pragma omp simd
    for (int l = 0; l < PF_LANES; l++) {
        const double xr = s->xr[l], xi = s->xi[l];
        ZR[l] = h*(12*(xr*xr - xi*xi) - 4); ZI[l] = h*24*xr*xi;
        WR[l] = 1 - ZR[l]; WI[l] = -ZI[l] + 0.0;       /* w = 1 - z, a zero imaginary part +0 */
        ARG[l] = ZR[l]*(ZR[l] - 2) + ZI[l]*ZI[l]; N2[l] = WR[l]*WR[l] + WI[l]*WI[l];
    }
#pragma omp simd
    for (int l = 0; l < PF_LANES; l++) { LG[l] = v_log1p(ARG[l]); LN[l] = v_log(N2[l]); AT[l] = v_atan2(WI[l], WR[l]); }
#pragma omp simd
    for (int l = 0; l < PF_LANES; l++) {
        const double xr = s->xr[l], xi = s->xi[l], zr = ZR[l], zi = ZI[l];
        const double lr = 0.5*(fabs(ARG[l]) < 0.5 ? LG[l] : LN[l]);
        const double li = AT[l] + 2*M_PI*round((lpi[l] - AT[l]) / (2*M_PI));   /* the nearest branch */
        const double d = zr*zr + zi*zi, dd = d > 0 ? d : 1;
        const double pr = d > 0 ? (lr*zr + li*zi) / dd : -1, pi = d > 0 ? (li*zr - lr*zi) / dd : 0;
        const double gr = 4*(xr*(xr*xr - 3*xi*xi) - xr), gi = 4*(xi*(3*xr*xr - xi*xi) - xi);
        f->xr[l] = pr*gr - pi*gi; f->xi[l] = pr*gi + pi*gr;
        f->yr[l] = cy*2*s->yr[l]; f->yi[l] = cy*2*s->yi[l];
        Li[l] = li;
    }
}
static inline void pf_axpy(pf_vec *o, const pf_vec *y, double c, const pf_vec *k) {   /* o = y + c k */
#pragma omp simd
    for (int l = 0; l < PF_LANES; l++) {
        o->xr[l] = y->xr[l] + c*k->xr[l]; o->xi[l] = y->xi[l] + c*k->xi[l];
        o->yr[l] = y->yr[l] + c*k->yr[l]; o->yi[l] = y->yi[l] + c*k->yi[l];
    }
}
void pf_rk4_lanes(int64_t n, const double *th, double h, double dt, int nsteps, double R, double tol,
                  double rest_tol, double imag_tol, int *lab, int threads) {
    const int64_t blocks = (n + PF_LANES - 1) / PF_LANES;
    const double cy = log(1 - 2*h) / (2*h);
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) if (threads > 1)
    for (int64_t b = 0; b < blocks; b++) {
        pf_vec y, k1, k2, k3, k4, z;
        double lpi[PF_LANES], L1[PF_LANES], Ls[PF_LANES];
        int streak[PF_LANES], state[PF_LANES];      /* 0: moving, 1: at rest, ESC */
        for (int l = 0; l < PF_LANES; l++) {
            const int64_t i = b * PF_LANES + l < n ? b * PF_LANES + l : n - 1;
            y.xr[l] = th[2*i]; y.xi[l] = 0; y.yr[l] = th[2*i+1]; y.yi[l] = 0; streak[l] = state[l] = 0;
            lpi[l] = h*(12*y.xr[l]*y.xr[l] - 4) > 1 ? M_PI : 0;     /* a real start past z = 1: +i pi */
        }
        for (int k = 0; k < nsteps; k++) {
            pf_block(h, cy, &y, lpi, &k1, L1);
            pf_axpy(&z, &y, 0.5*dt, &k1); pf_block(h, cy, &z, L1, &k2, Ls);
            pf_axpy(&z, &y, 0.5*dt, &k2); pf_block(h, cy, &z, L1, &k3, Ls);
            pf_axpy(&z, &y, dt, &k3); pf_block(h, cy, &z, L1, &k4, Ls);
            int moving = 0;
#pragma omp simd reduction(|:moving)
            for (int l = 0; l < PF_LANES; l++) {
                const double fm = MAX(k1.xr[l]*k1.xr[l] + k1.xi[l]*k1.xi[l], k1.yr[l]*k1.yr[l] + k1.yi[l]*k1.yi[l]);
                const double ym = MAX(y.xr[l]*y.xr[l] + y.xi[l]*y.xi[l], y.yr[l]*y.yr[l] + y.yi[l]*y.yi[l]);
                streak[l] = k > 0 && sqrt(fm) <= rest_tol * (1 + sqrt(ym)) ? streak[l] + 1 : 0;
                const int go = state[l] == 0 && streak[l] < REST_STEPS;
                const double w = dt/6;
                const double nxr = y.xr[l] + w*(k1.xr[l] + 2*k2.xr[l] + 2*k3.xr[l] + k4.xr[l]);
                const double nxi = y.xi[l] + w*(k1.xi[l] + 2*k2.xi[l] + 2*k3.xi[l] + k4.xi[l]);
                const double nyr = y.yr[l] + w*(k1.yr[l] + 2*k2.yr[l] + 2*k3.yr[l] + k4.yr[l]);
                const double nyi = y.yi[l] + w*(k1.yi[l] + 2*k2.yi[l] + 2*k3.yi[l] + k4.yi[l]);
                y.xr[l] = go ? nxr : y.xr[l]; y.xi[l] = go ? nxi : y.xi[l];
                y.yr[l] = go ? nyr : y.yr[l]; y.yi[l] = go ? nyi : y.yi[l];
                lpi[l] = go ? L1[l] : lpi[l];
                state[l] = go && !(sqrt(nxr*nxr + nxi*nxi + nyr*nyr + nyi*nyi) <= R) ? ESC
                           : state[l] == 0 && !go ? 1 : state[l];
                moving |= state[l] == 0;
            }
            if (!moving) break;
        }
        for (int l = 0; l < PF_LANES && b * PF_LANES + l < n; l++) {     /* labels as pf_rk4's */
            double complex x = CMPLX(y.xr[l], y.xi[l]), v = CMPLX(y.yr[l], y.yi[l]), fx, fy, L;
            pf(h, x, v, CMPLX(0, lpi[l]), &fx, &fy, &L);
            const int rest = fmax(cabs(fx), cabs(fy)) <= tol * (1 + fmax(cabs(x), cabs(v)));
            const int real = fmax(fabs(cimag(x)), fabs(cimag(v))) <= imag_tol;
            lab[b * PF_LANES + l] = state[l] == ESC ? ESC : rest && real ? label_of(creal(x), creal(v)) : UNRES;
        }
    }
}
"""


def plain_c():
    lib = compile_c(PLAIN_C, "basins", openmp=True, native=True)   # the flags of flowcore's map kernels
    D, I, L = ctypes.c_double, ctypes.c_int, ctypes.c_int64
    P = np.ctypeslib.ndpointer(np.float64, flags="C")
    Q = np.ctypeslib.ndpointer(np.intc, flags="C")
    lib.gd.argtypes = [L, P, D, I, I, D, D, Q]
    lib.gd_periods.argtypes = [L, P, D, I, I, D, D, Q, I]
    lib.gd_lanes.argtypes = [L, P, D, I, D, D, Q, I]
    lib.igr_rk4.argtypes = lib.igr_rk4_lanes.argtypes = [L, P, D, D, I, D, D, D, Q, I]
    lib.pf_rk4.argtypes = lib.pf_rk4_lanes.argtypes = [L, P, D, D, I, D, D, D, D, Q, I]
    return lib


def _label(final, rest):
    """numpy labelling: nearest critical point within 1e-4, escaped, unresolved."""
    lab = np.full(len(final), -2)
    with np.errstate(invalid="ignore"):
        for c, p in enumerate(MINIMA):
            lab[rest & (np.max(np.abs(final - p), axis=1) <= 1e-4 * (1 + abs(p[0])))] = c
        lab[~(np.linalg.norm(final, axis=1) <= RADIUS)] = -1
    return lab


def numpy_gd(th, h, steps):
    x, y = th[:, 0].copy(), th[:, 1].copy()
    with np.errstate(all="ignore"):
        for _ in range(steps):
            x -= h * 4 * x * (x * x - 1)
            y -= h * 2 * y
            big = x * x + y * y > RADIUS ** 2
            x[big] = np.inf
        g = np.stack([4 * x * (x * x - 1), 2 * y], 1)
    final = np.stack([x, y], 1)
    return _label(final, np.max(np.abs(h * g), axis=1) <= 1e-10 * (1 + np.max(np.abs(final), axis=1)))


def _rk4(field, z, dt, nsteps):
    with np.errstate(all="ignore"):
        for _ in range(nsteps):
            k1 = field(z)
            k2 = field(z + 0.5 * dt * k1)
            k3 = field(z + 0.5 * dt * k2)
            k4 = field(z + dt * k3)
            z = z + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            z[~(np.linalg.norm(z, axis=1) <= RADIUS)] = np.inf
        return z, field(z)


def igr_field(h):
    def f(z):
        x, y = z[:, 0], z[:, 1]
        gx, gy = 4 * x * (x * x - 1), 2 * y
        return np.stack([-gx - 0.5 * h * (12 * x * x - 4) * gx, -gy - h * gy], 1)
    return f


def numpy_pf(th, h, dt, nsteps, tol, imag_tol):
    """RK4 for the PF with the x-direction's log continued per trajectory (nearest branch to
    its value at the step's start), as the C loop."""
    def log1m_near(z, prev):
        w = 1 - z
        w = np.where(w.imag == 0, w.real + 0j, w)            # +0 imaginary part: the +iπ side
        L = np.log(w)
        return L + 2j * np.pi * np.round((prev.imag - L.imag) / (2 * np.pi))

    def f(z, prev):
        x, y = z[:, 0], z[:, 1]
        zx = h * (12 * x * x - 4)
        L = log1m_near(zx, prev)
        with np.errstate(all="ignore"):
            ax = np.where(np.abs(zx) < 1e-8, -1 - zx / 2, L / zx)
        return np.stack([ax * 4 * x * (x * x - 1), np.log(1 - 2 * h) / (2 * h) * 2 * y], 1), L

    z = th.astype(complex)
    z0 = h * (12 * th[:, 0] ** 2 - 4)
    prev = np.where(z0 > 1, 1j * np.pi, 0j)
    with np.errstate(all="ignore"):
        for _ in range(nsteps):
            k1, prev = f(z, prev)
            k2, _ = f(z + 0.5 * dt * k1, prev)
            k3, _ = f(z + 0.5 * dt * k2, prev)
            k4, _ = f(z + dt * k3, prev)
            z = z + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            z[~(np.linalg.norm(z, axis=1) <= RADIUS)] = np.inf
        fz, _ = f(z, prev)
        rest = np.max(np.abs(fz), axis=1) <= tol * (1 + np.max(np.abs(z), axis=1))
        rest &= np.max(np.abs(z.imag), axis=1) <= imag_tol
    return _label(np.real(z), rest)


def numpy_flow(field, th, dt, nsteps, tol):
    z, f = _rk4(field, th.copy(), dt, nsteps)
    with np.errstate(invalid="ignore"):
        rest = np.max(np.abs(f), axis=1) <= tol * (1 + np.max(np.abs(z), axis=1))
    return _label(z, rest)


def fc_labels(b):
    """flowcore's labels in the benchmark's numbering (0, 1 minima, 2 saddle, −1, −2, −3 cycle)."""
    lab = np.asarray(b.labels).reshape(-1).copy()
    out = np.full(lab.shape, -2)
    out[lab == -1] = -1
    for e in b.entries:
        if e.critical is not None:
            out[lab == e.label] = int(np.argmin(np.max(np.abs(MINIMA - e.critical.point), axis=1)))
        elif e.label >= 0 and len(e.points) > 1:
            out[lab == e.label] = -3                 # a cycle, as the C loop's CYCLE
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="grids of 100 × 100, one repeat")
    ap.add_argument("--pairs", type=int, default=7, help="interleaved (flowcore 1 thread, C) timing pairs "
                    "for the ratio: its median is robust to a shared machine's slow spells (default 7)")
    ap.add_argument("--only", default="abc", help="the problems to run, by letter (default abc; 'a': GD basins)")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    loss = fc.losses.double_well()
    crit = fa.critical_points(loss)
    lib = plain_c()
    T = 20.0
    problems = [  # label, n per side, model, lr, fa.basins options, numpy, C
        ("(a) GD basins, h = 0.1", 1000, fc.GD(0.1), 0.1, dict(steps=1000),
         lambda th: numpy_gd(th, 0.1, 1000),
         lambda th, lab, thr: lib.gd_periods(len(th), th, 0.1, 1000, 50, 1e-10, RADIUS, lab, thr)),
        ("(b) IGR basins, h = 0.1", 500, fc.IGR(0.1, solver=fc.RK4(0.05), t_max=T), 0.1, dict(tol=1e-5),
         lambda th: numpy_flow(igr_field(0.1), th, 0.05, int(T / 0.05), 1e-5),
         lambda th, lab, thr: lib.igr_rk4(len(th), th, 0.1, 0.05, int(T / 0.05), RADIUS, 1e-5, REST * 1e-5, lab, thr)),
        ("(c) PF basins, h = 0.2", 300, fc.PF(0.2, solver=fc.RK4(0.02), t_max=T), 0.2, dict(tol=1e-5),
         lambda th: numpy_pf(th, 0.2, 0.02, int(T / 0.02), 1e-5, 1e-6),
         lambda th, lab, thr: lib.pf_rk4(len(th), th, 0.2, 0.02, int(T / 0.02), RADIUS, 1e-5, REST * 1e-5, 1e-6, lab,
                                         thr)),
    ]
    problems = [p for p in problems if p[0][1] in args.only]
    rows = []
    for label, n, model, lr, kw, np_run, c_run in problems:
        n = 100 if args.quick else n
        grid = ((-2, 2, n), (-2, 2, n))
        th = np.ascontiguousarray(fa.grid_points(2, grid)[1].reshape(-1, 2))

        def run_fc(threads):
            return fa.basins(loss, model, grid, rest=fc.RestTest(escape_radius=RADIUS, **kw),
                             matching=fa.Matching(critical=crit), compute=fc.Compute(threads=threads), progress=False)

        def run_c(threads=1):
            lab = np.empty(len(th), np.intc)
            c_run(th, lab, threads)
            return lab
        pairs = 1 if args.quick else args.pairs
        t2 = median_time(lambda: run_fc(2), repeats=repeats, min_time=0)
        t1, tc, ratio = paired_times(lambda: run_fc(1), run_c, pairs)
        # thread scaling, flowcore's and the C loop's (OpenMP, the same schedule), by wall time
        wall = time.perf_counter
        scaling = [paired_times(one, two, pairs, clock=wall)[2]
                   for one, two in ((lambda: run_fc(1), lambda: run_fc(2)), (run_c, lambda: run_c(2)))]
        slow = not args.quick and model.name != "gd"     # numpy takes minutes there: one cold run
        tn = median_time(lambda: np_run(th), repeats=1 if slow else repeats, min_time=0, warmup=not slow)
        fixed_only = {}
        if model.name == "gd":       # the C loop with the p = 1 test alone: what cycle detection costs
            def run_c1():
                lab = np.empty(len(th), np.intc)
                lib.gd(len(th), th, lr, 1000, 50, 1e-10, RADIUS, lab)
                return lab
            def run_lanes(threads=1):
                lab = np.empty(len(th), np.intc)
                lib.gd_lanes(len(th), th, lr, 1000, 1e-10, RADIUS, lab, threads)
                return lab
            t_lanes = median_time(run_lanes, repeats=repeats, min_time=0)
            fixed_only = {"plain C, p = 1 only [s]": median_time(run_c1, repeats=repeats, min_time=0),
                          "C 8 lanes, all steps [s]": t_lanes, "flowcore 1 thr / lanes": t1 / t_lanes,
                          "lanes 2-thread speed-up": t_lanes / median_time(lambda: run_lanes(2), repeats=repeats,
                                                                            min_time=0),
                          "agree lanes": float(np.mean(run_lanes() == fc_labels(run_fc(2))))}
        if model.name in ("igr", "pf"):      # the C loop in lanes
            def run_flow_lanes(threads=1):
                lab = np.empty(len(th), np.intc)
                if model.name == "igr":
                    lib.igr_rk4_lanes(len(th), th, lr, 0.05, int(T / 0.05), RADIUS, 1e-5, REST * 1e-5, lab, threads)
                else:
                    lib.pf_rk4_lanes(len(th), th, lr, 0.02, int(T / 0.02), RADIUS, 1e-5, REST * 1e-5, 1e-6, lab,
                                     threads)
                return lab
            _, t_lanes, ratio_lanes = paired_times(lambda: run_fc(1), run_flow_lanes, pairs)
            fixed_only = {"C 16 lanes, rest test [s]": t_lanes, "flowcore 1 thr / lanes": ratio_lanes,
                          "lanes 2-thread speed-up": paired_times(run_flow_lanes, lambda: run_flow_lanes(2),
                                                                  pairs, clock=time.perf_counter)[2],
                          "agree lanes": float(np.mean(run_flow_lanes() == fc_labels(run_fc(2))))}
        ref = fc_labels(run_fc(2))
        rows.append({"problem": label, "starts": n * n, "flowcore 2 thr [s]": t2, "2-thread speed-up": scaling[0],
                     "C 2-thread speed-up": scaling[1],
                     "numpy [s]": tn, "numpy runs": 1 if slow else repeats, "× numpy (2 thr)": tn / t2, "plain C 1 thr [s]": tc,
                     "flowcore 1 thr [s]": t1, "flowcore 1 thr / C": ratio,
                     "agree numpy": float(np.mean(np_run(th) == ref)), "agree C": float(np.mean(run_c() == ref)),
                     "labels": ", ".join(f"{v}: {c}" for v, c in zip(*np.unique(ref, return_counts=True))),
                     **fixed_only})
        print(f"{label}: done", flush=True)
    cols = ["problem", "starts", "flowcore 2 thr [s]", "2-thread speed-up", "C 2-thread speed-up", "numpy [s]", "numpy runs", "× numpy (2 thr)",
            "flowcore 1 thr [s]", "plain C 1 thr [s]", "flowcore 1 thr / C", "plain C, p = 1 only [s]",
            "C 8 lanes, all steps [s]", "C 16 lanes, rest test [s]", "flowcore 1 thr / lanes", "lanes 2-thread speed-up", "agree numpy", "agree C",
            "agree lanes", "labels"]
    print(table(rows, cols))
    print("JSON:", write_json("basins", rows, repeats=repeats, quick=args.quick))


if __name__ == "__main__":
    main()
