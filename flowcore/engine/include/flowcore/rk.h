/* The explicit Runge–Kutta loop of fc.solve, and its two entry points: a host function whose
 * OpenMP threads each advance FC_W trajectories together in SIMD lanes, and a CUDA kernel (one
 * thread per trajectory: FC_W = 1).
 *
 * Included after the problem (fc_branch, fc_branch_init, fc_rhs) and the method the generator
 * unrolled from its tableau, both on lane-strided vectors (coordinate k of a lane at [k·FC_W],
 * stage j's at [(j·FC_D + k)·FC_W] of K):
 *   FC_STAGES s, FC_ADAPTIVE, FC_DENSE, FC_ORDER (of the error estimate, for the first step),
 *   FC_ALPHA, FC_BETA (PI exponents),
 *   fc_attempt(y, K, h, ynew, z, b, bnew, a, nfev, st): for every lane of a block (vectors at
 *       their lane-0 base, h, b, bnew, nfev and st indexed by lane), stages 1..s-1 from
 *       K[0] = f(y) (z: the stage input), ynew, and K[s] = f(ynew) with its branch state bnew;
 *       every stage is computed, st set to the first non-OK status, and nfev counts the stages
 *       up to it.
 *   fc_error(y, ynew, K, h, a): the scaled error norm (adaptive methods).
 *   fc_dense(y, K, x, h, out): y(t + x h) from the continuous extension (FC_DENSE), out contiguous.
 *
 * Semantics (the same on both targets and at every width): per-trajectory PI control (Hairer,
 * Nørsett & Wanner, Solving ODEs I, II.4) with Hairer's initial step, FSAL, landing on every
 * output time (or on the end only, with dense output), branch state advanced on accepted steps
 * only, and a status per trajectory. An optional rest test ends a trajectory whose
 * ‖f‖∞ ≤ rest_tol (1 + ‖y‖∞) held for rest_window accepted steps: its remaining outputs repeat its
 * last state.
 *
 * Lanes: the stages of all FC_W lanes run in one loop the compiler vectorises (each lane with its
 * own step size; a lane's arithmetic is exactly its scalar arithmetic, with no FMA contraction,
 * so results are bitwise the same at every width, thread count and batch); the step control,
 * outputs and statuses then run lane by lane, and a lane whose trajectory ended takes the next
 * start at once.
 */
#ifndef FLOWCORE_RK_H
#define FLOWCORE_RK_H
#include "control.h"

#define FC_SAFETY 0.9
#define FC_FACMIN 0.2
#define FC_FACMAX 10.0
#define FC_EPS 2.220446049250313e-16
#define FC_ERR_OLD_START 1e-4   /* the previous error assumed before the first step */
#define FC_SHRINK_ON_FAULT 0.25 /* a rejected step with a non-finite value retries at this fraction */
#define FC_H0_FRACTION 0.01     /* Hairer's h0 = 0.01 d0/d1, then min(100 h0, (0.01/max(d1, d2))^(1/(q+1))) */
#define FC_H0_GROWTH 100.0
#define FC_H0_FALLBACK 1e-6
#define FC_H0_NEGLIGIBLE 1e-5
#define FC_RUNNING (-1)         /* a lane's trajectory goes on (not a status) */
#define FC_LOG_ERR_OLD_START (-9.2103403719761836)   /* log FC_ERR_OLD_START */

/* The state of FC_W trajectories in structure-of-arrays layout: lane l's vectors start at +l */
typedef struct {
    fc_s y[FC_D * FC_W], ynew[FC_D * FC_W], z[FC_D * FC_W], K[(FC_STAGES + 1) * FC_D * FC_W];
    double t[FC_W], h[FC_W], h_try[FC_W], err[FC_W];
    double log_err[FC_W], log_errold[FC_W], fac[FC_W];   /* the controller's (fc_ctrl_log) */
    fc_int64 traj[FC_W];          /* the lane's trajectory, −1: idle */
    fc_int64 k_out[FC_W], resting[FC_W], nfev[FC_W], nsteps[FC_W], nreject[FC_W];
    int fault[FC_W], rejected[FC_W];
    fc_branch b[FC_W], bnew[FC_W];
} fc_rk_lanes;

/* where starts come from and results go */
typedef struct {
    const fc_s *y0;
    fc_s *Y;                      /* [n, nout, D]: untouched after a stop */
    int *status;
    fc_int64 *nfev, *nsteps, *nreject;
    fc_work w;
} fc_rk_queue;

#if FC_ADAPTIVE
/* Hairer's initial step from f(y0) = K[0]; evaluates f once more (into K[FC_STAGES]; y1 in z). */
FC_FN double fc_first_step(const fc_args *a, const fc_s *y, fc_s *K, fc_s *z, const fc_branch *b,
                           double span, fc_int64 *nfev)
{
    double d0 = 0, d1 = 0, d2 = 0, h;
    for (int k = 0; k < FC_D; k++) {
        const double sc = a->atol + a->rtol * fc_abs(y[FC_L(k)]);
        d0 += (fc_abs(y[FC_L(k)]) / sc) * (fc_abs(y[FC_L(k)]) / sc);
        d1 += (fc_abs(K[FC_KS(0, k)]) / sc) * (fc_abs(K[FC_KS(0, k)]) / sc);
    }
    d0 = sqrt(d0 / FC_D);
    d1 = sqrt(d1 / FC_D);
    h = (d0 < FC_H0_NEGLIGIBLE || d1 < FC_H0_NEGLIGIBLE) ? FC_H0_FALLBACK : FC_H0_FRACTION * d0 / d1;
    h = fmin(h, span);
    for (int k = 0; k < FC_D; k++) z[FC_L(k)] = y[FC_L(k)] + h * K[FC_KS(0, k)];
    const int fault = fc_rhs(z, K + FC_KS(FC_STAGES, 0), b, 0, a);
    ++*nfev;
    d1 = 0;
    for (int k = 0; k < FC_D; k++) {
        const double sc = a->atol + a->rtol * fc_abs(y[FC_L(k)]);
        const double dk = fc_abs(K[FC_KS(FC_STAGES, k)] - K[FC_KS(0, k)]) / sc;
        d1 += (fc_abs(K[FC_KS(0, k)]) / sc) * (fc_abs(K[FC_KS(0, k)]) / sc);
        d2 += dk * dk;
    }
    d1 = sqrt(d1 / FC_D);
    d2 = sqrt(d2 / FC_D) / h;
    if (d1 <= 1e-15 && d2 <= 1e-15) h = fmax(FC_H0_FALLBACK, h * 1e-3);
    else h = fmin(FC_H0_GROWTH * h, pow(FC_H0_FRACTION / fmax(d1, d2), 1.0 / (FC_ORDER + 1)));
    if (!isfinite(h) || fault != FC_OK) h = FC_H0_FALLBACK * fmax(1.0, span);
    return h;
}
#endif

/* the lane's next attempt: land exactly on the next output (with dense output, on the end
   only; a remainder within rounding of a full step joins it); FC_RUNNING, or FC_INTERRUPTED
   (the Ctrl-C flag, read every 64 accepted steps: a volatile load a step shows on a cheap field) */
FC_FN int fc_lane_aim(const fc_args *a, fc_rk_lanes *B, int l)
{
    if ((B->nsteps[l] & 63) == 0 && a->interrupt && *a->interrupt) return FC_INTERRUPTED;
    const double t = B->t[l], h = B->h[l];
    const double tgt = FC_DENSE ? a->tout[a->nout - 1] : a->tout[B->k_out[l]];
    B->h_try[l] = t + h * (1 + 1e-9) < tgt ? h : tgt - t;
    return FC_RUNNING;
}

/* lane l begins y0 at a->t0: f(y0), the branch state and the first step; its status when it
   ends before a step, else FC_RUNNING */
FC_FN int fc_lane_start(const fc_args *a, fc_rk_lanes *B, int l, const fc_s *y0)
{
    fc_s *y = B->y + l, *K = B->K + l;
    B->t[l] = a->t0;
    B->log_errold[l] = FC_LOG_ERR_OLD_START;
    B->k_out[l] = B->resting[l] = B->nfev[l] = B->nsteps[l] = B->nreject[l] = 0;
    B->rejected[l] = 0;
    for (int k = 0; k < FC_D; k++) y[FC_L(k)] = y0[k];
    int fault = fc_check_lane(y);
    if (fault == FC_OK) fault = fc_branch_init(y, &B->b[l], a);
    if (fault != FC_OK) return fault;
    fault = fc_rhs(y, K, &B->b[l], 0, a);
    ++B->nfev[l];
    if (fault == FC_OK) fault = fc_check_lane(K);
    if (fault != FC_OK) return fault;
    const double span = a->tout[a->nout - 1] - a->t0;
#if FC_ADAPTIVE
    B->h[l] = a->dt > 0 ? fmin(a->dt, span) : fc_first_step(a, y, K, B->z + l, &B->b[l], span, &B->nfev[l]);
#else
    B->h[l] = a->dt;
    (void)span;
#endif
    return fc_lane_aim(a, B, l);
}

/* lane l after its attempt (B->fault, B->err): the step accepted or rejected, outputs written
   to its rows Y [nout, D], the next attempt aimed; its status when its trajectory ends, else
   FC_RUNNING */
FC_FN int fc_lane_advance(const fc_args *a, fc_rk_lanes *B, int l, fc_s *Y)
{
    fc_s *y = B->y + l, *ynew = B->ynew + l, *K = B->K + l;
    const double tend = a->tout[a->nout - 1], h_try = B->h_try[l], t = B->t[l];
    const double tgt = FC_DENSE ? tend : a->tout[B->k_out[l]];
    int fault = B->fault[l];
#if FC_ADAPTIVE
    const double err = B->err[l];
    if (fault != FC_OK || !(err <= 1.0)) {
        ++B->nreject[l];
        const double fac = B->fac[l];
        const double h = (fault != FC_OK || !isfinite(err)) ? FC_SHRINK_ON_FAULT * h_try
                         : h_try * (fac > FC_FACMIN ? fac : FC_FACMIN);
        B->h[l] = h;
        B->rejected[l] = 1;
        if (h < 10 * FC_EPS * fmax(fabs(t), 1.0))
            return fault == FC_SINGULAR ? FC_SINGULAR : FC_STEP_UNDERFLOW;
        return fc_lane_aim(a, B, l);
    }
    double fac = err == 0 ? FC_FACMAX : B->fac[l];
    const double cap = B->rejected[l] ? 1.0 : FC_FACMAX;   /* finite numbers: compares, not calls */
    fac = fac > FC_FACMIN ? fac : FC_FACMIN;
    fac = fac < cap ? fac : cap;
    B->log_errold[l] = err > FC_ERR_OLD_START ? B->log_err[l] : FC_LOG_ERR_OLD_START;
    B->rejected[l] = 0;
    if (h_try == B->h[l] || fac < 1) B->h[l] = h_try * fac;   /* a step cut short for an output keeps its h */
#else
    if (fault == FC_OK && FC_DENSE) fault = fc_check_lane(ynew);   /* before interpolating */
    if (fault != FC_OK) return fault;
#endif
    fc_int64 k_out = B->k_out[l];
#if FC_DENSE
    while (k_out < a->nout - 1 && a->tout[k_out] <= t + h_try) {
        fc_dense(y, K, (a->tout[k_out] - t) / h_try, h_try, Y + k_out * FC_D);
        k_out++;
    }
#endif
    B->t[l] = h_try == tgt - t ? tgt : t + h_try;
    const fc_int64 nsteps = ++B->nsteps[l];
    double norm2 = 0, fmax_ = 0, ymax = 0;
    for (int k = 0; k < FC_D; k++) {
        y[FC_L(k)] = ynew[FC_L(k)];
        K[FC_KS(0, k)] = K[FC_KS(FC_STAGES, k)];
        norm2 += fc_abs2(y[FC_L(k)]);
        fmax_ = fc_max(fmax_, fc_abs(K[FC_KS(0, k)]));
        ymax = fc_max(ymax, fc_abs(y[FC_L(k)]));
    }
    B->b[l] = B->bnew[l];
    /* one compare a step: escaped, or (fixed steps) a non-finite state; no sqrt */
    const int escaped = !(norm2 <= a->radius * a->radius);
    if (escaped && fc_check_lane(y) != FC_OK) return FC_NONFINITE;
    if (B->t[l] == tgt) {
        for (int k = 0; k < FC_D; k++) Y[k_out * FC_D + k] = y[FC_L(k)];
        if (++k_out == a->nout && !escaped) return FC_OK;
    }
    B->k_out[l] = k_out;
    if (escaped) return FC_ESCAPED;
    if (nsteps >= a->max_steps) return FC_MAX_STEPS;
    if (a->rest_tol > 0) {
        B->resting[l] = fmax_ <= a->rest_tol * (1 + ymax) ? B->resting[l] + 1 : 0;
        if (B->resting[l] >= a->rest_window) {
            if (fc_check_lane(K) != FC_OK) return FC_NONFINITE;   /* a NaN drops out of fc_max */
            for (; k_out < a->nout; k_out++)
                for (int k = 0; k < FC_D; k++) Y[k_out * FC_D + k] = y[FC_L(k)];
            return FC_OK;
        }
    }
    return fc_lane_aim(a, B, l);
}

/* lane l idle: at y = 0, h = 0, so that its share of the vector work computes on harmless
   numbers until it takes a start */
FC_FN void fc_lane_idle(fc_rk_lanes *B, int l)
{
    B->traj[l] = -1;
    B->h_try[l] = 0;
    for (int d = 0; d < FC_D * (FC_STAGES + 1); d++) B->K[d * FC_W + l] = 0;
    for (int k = 0; k < FC_D; k++) B->y[FC_L(k) + l] = 0;
}

/* the lane's trajectory ended with status st: its counters out, the lane idle */
FC_FN void fc_lane_end(fc_rk_lanes *B, int l, int st, fc_rk_queue *q)
{
    const fc_int64 i = B->traj[l];
    q->status[i] = st;
    q->nfev[i] = B->nfev[l];
    q->nsteps[i] = B->nsteps[l];
    q->nreject[i] = B->nreject[l];
    fc_lane_idle(B, l);
}

/* an idle lane takes starts until one needs steps (or none is left) */
FC_FN void fc_lane_fill(const fc_args *a, fc_rk_lanes *B, int l, fc_rk_queue *q)
{
    fc_int64 i;
    while (B->traj[l] < 0 && (i = fc_take(&q->w)) >= 0) {
        B->traj[l] = i;
        const int st = fc_lane_start(a, B, l, q->y0 + i * FC_D);
        if (st != FC_RUNNING) fc_lane_end(B, l, st, q);
    }
}

#if FC_ADAPTIVE
/* lane l's error norm and the controller's factor, computed in every lane and then selected (a
   lane-dependent branch would mask it all). Forced inline, with fc_error: the loop over the lanes
   that calls it was not vectorised for complex states otherwise (measured: the tracked PF 0.87 s
   against 0.66 s) */
FC_INLINE void fc_lane_error(const fc_args *a, fc_rk_lanes *B, int l)
{
    const double e = fc_error(B->y + l, B->ynew + l, B->K + l, B->h_try[l], a);
    const int st = B->fault[l] == FC_OK ? fc_check_lane(B->ynew + l) : B->fault[l];
    const double err = st == FC_OK ? e : 0.0;
    B->fault[l] = st;
    B->err[l] = err;
    /* an accepted step's factor remembers errold, a rejected one's does not */
    const double L = fc_ctrl_log(err);
    B->log_err[l] = L;
    B->fac[l] = FC_SAFETY * fc_ctrl_exp(-FC_ALPHA * L + (err <= 1.0 ? FC_BETA * B->log_errold[l] : 0.0));
}

/* every lane's */
FC_FN void fc_block_errors(const fc_args *a, fc_rk_lanes *B)
{
    FC_SIMD
    for (int l = 0; l < FC_W; l++) fc_lane_error(a, B, l);
}
#endif

/* A thread's trajectories, FC_W at a time, until its queue is empty */
FC_FN void fc_rk_run(const fc_args *args, fc_rk_lanes *B, fc_rk_queue *q)
{
    const fc_args A = *args, *a = &A;    /* a local copy: stores to the state cannot alias it */
    for (int l = 0; l < FC_W; l++) fc_lane_idle(B, l);
    for (;;) {
        /* the lanes to fill: tested vectorised first (a loop that calls fc_lane_fill keeps its
           flag in memory: a store-to-load chain through the 32 lanes every step) */
        int idle = 0, active = 1;
        FC_SIMD_ANY(idle)
        for (int l = 0; l < FC_W; l++) idle |= B->traj[l] < 0;
        if (idle) {
            active = 0;
            for (int l = 0; l < FC_W; l++) {
                fc_lane_fill(a, B, l, q);
                active |= B->traj[l] >= 0;
            }
        }
        if (!active) return;
        fc_attempt(B->y, B->K, B->h_try, B->ynew, B->z, B->b, B->bnew, a, B->nfev, B->fault);
#if FC_ADAPTIVE
        fc_block_errors(a, B);
#endif
        for (int l = 0; l < FC_W; l++) {
            if (B->traj[l] < 0) continue;
            const int st = fc_lane_advance(a, B, l, q->Y + B->traj[l] * a->nout * FC_D);
            if (st != FC_RUNNING) fc_lane_end(B, l, st, q);
        }
    }
}

#ifdef FC_CUDA
extern "C" __global__ void fc_solve_gpu(const double *r, const fc_int64 *n_args, const double *tout,
                                        fc_int64 n, const fc_s *y0, fc_s *Y, int *status,
                                        fc_int64 *nfev, fc_int64 *nsteps, fc_int64 *nreject)
{
    const fc_int64 i = (fc_int64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const fc_args a = fc_unpack(r, n_args, tout, 0);
    fc_rk_queue q = {y0, Y, status, nfev, nsteps, nreject, {i, i + 1, n, 0}};   /* its trajectory */
    fc_rk_lanes B;
    fc_rk_run(&a, &B, &q);
}
#else
#include <stdlib.h>
/* Trajectories in parallel, FC_W per thread at a time; each one's arithmetic is its own, so
   results do not depend on the thread count, the batch or the width. */
int fc_solve_host(const double *r, const fc_int64 *n_args, const double *tout,
                  const volatile int *interrupt, fc_int64 n, const fc_s *y0, fc_s *Y, int *status,
                  fc_int64 *nfev, fc_int64 *nsteps, fc_int64 *nreject, int threads)
{
    const fc_args a = fc_unpack(r, n_args, tout, interrupt);
    fc_int64 next = 0;          /* the first start no thread has taken */
    int failed = 0;
    (void)threads;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        fc_rk_queue q = {y0, Y, status, nfev, nsteps, nreject, {0, 0, n, &next}};
#if FC_W == 1
        fc_rk_lanes B;          /* on the stack, where the compiler keeps a lane of one in registers */
        fc_rk_run(&a, &B, &q);
#else
        void *mem = 0;          /* aligned: no vector of a lane block straddles two cache lines */
        fc_rk_lanes *B = posix_memalign(&mem, 64, sizeof(fc_rk_lanes)) == 0 ? (fc_rk_lanes *)mem : 0;
        if (B) fc_rk_run(&a, B, &q);
        else failed = 1;
        free(B);
#endif
    }
    return failed ? -1 : 0;
}
#endif

#endif
