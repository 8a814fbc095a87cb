/* The explicit Runge–Kutta loop of fc.solve for one trajectory, and its two entry points: a host
 * function that runs trajectories in parallel (OpenMP) and a CUDA kernel (one thread each).
 *
 * Included after the problem (fc_branch, fc_branch_init, fc_rhs) and the method the generator
 * unrolled from its tableau:
 *   FC_STAGES s, FC_ADAPTIVE, FC_DENSE, FC_ORDER (of the error estimate, for the first step),
 *   FC_ALPHA, FC_BETA (PI exponents),
 *   fc_attempt(y, K, h, ynew, b, bnew, a, nfev): stages 1..s-1 from K[0] = f(y), ynew, and
 *       K[s] = f(ynew) with its branch state bnew; returns the first non-OK status.
 *   fc_error(y, ynew, K, h, a): the scaled error norm (adaptive methods).
 *   fc_dense(y, K, x, h, out): y(t + x h) from the continuous extension (FC_DENSE).
 *
 * Semantics (the same on both targets): per-trajectory PI control (Hairer, Nørsett & Wanner,
 * Solving ODEs I, II.4) with Hairer's initial step, FSAL, landing on every output time (or on
 * the end only, with dense output), branch state advanced on accepted steps only, and a status
 * per trajectory. An optional rest test ends a trajectory whose ‖f‖∞ ≤ rest_tol (1 + ‖y‖∞)
 * held for rest_window accepted steps: its remaining outputs repeat its last state.
 */
#ifndef FLOWCORE_RK_H
#define FLOWCORE_RK_H

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

#if FC_ADAPTIVE
/* Hairer's initial step from f(y0) = K[0]; evaluates f once more (into K[FC_STAGES]). */
FC_FN double fc_first_step(const fc_args *a, const fc_s *y, fc_s (*K)[FC_D], const fc_branch *b,
                           double span, fc_int64 *nfev)
{
    double d0 = 0, d1 = 0, d2 = 0, h;
    fc_s y1[FC_D];
    for (int k = 0; k < FC_D; k++) {
        const double sc = a->atol + a->rtol * fc_abs(y[k]);
        d0 += (fc_abs(y[k]) / sc) * (fc_abs(y[k]) / sc);
        d1 += (fc_abs(K[0][k]) / sc) * (fc_abs(K[0][k]) / sc);
    }
    d0 = sqrt(d0 / FC_D);
    d1 = sqrt(d1 / FC_D);
    h = (d0 < FC_H0_NEGLIGIBLE || d1 < FC_H0_NEGLIGIBLE) ? FC_H0_FALLBACK : FC_H0_FRACTION * d0 / d1;
    h = fmin(h, span);
    for (int k = 0; k < FC_D; k++) y1[k] = y[k] + h * K[0][k];
    const int fault = fc_rhs(y1, K[FC_STAGES], b, 0, a);
    ++*nfev;
    d1 = 0;
    for (int k = 0; k < FC_D; k++) {
        const double sc = a->atol + a->rtol * fc_abs(y[k]);
        d1 += (fc_abs(K[0][k]) / sc) * (fc_abs(K[0][k]) / sc);
        d2 += (fc_abs(K[FC_STAGES][k] - K[0][k]) / sc) * (fc_abs(K[FC_STAGES][k] - K[0][k]) / sc);
    }
    d1 = sqrt(d1 / FC_D);
    d2 = sqrt(d2 / FC_D) / h;
    if (d1 <= 1e-15 && d2 <= 1e-15) h = fmax(FC_H0_FALLBACK, h * 1e-3);
    else h = fmin(FC_H0_GROWTH * h, pow(FC_H0_FRACTION / fmax(d1, d2), 1.0 / (FC_ORDER + 1)));
    if (!isfinite(h) || fault != FC_OK) h = FC_H0_FALLBACK * fmax(1.0, span);
    return h;
}
#endif

/* One trajectory from y0 at a->t0; Y [nout, D] receives the outputs (untouched after a stop). */
FC_FN int fc_integrate(const fc_args *args, const fc_s *y0, fc_s *Y, fc_int64 *nfev,
                       fc_int64 *nsteps, fc_int64 *nreject)
{
    const fc_args A = *args, *a = &A;    /* a local copy: stores to the state cannot alias it */
    fc_s y[FC_D], ynew[FC_D], K[FC_STAGES + 1][FC_D];
    fc_branch b, bnew;
    const double tend = a->tout[a->nout - 1];
    double t = a->t0, h, h_try, errold = FC_ERR_OLD_START;
    const double r2 = a->radius * a->radius;
    fc_int64 k_out = 0, resting = 0;
    int rejected = 0, fault;
    for (int k = 0; k < FC_D; k++) y[k] = y0[k];
    if (fc_check(y, FC_D) != FC_OK) return FC_NONFINITE;
    if ((fault = fc_branch_init(y, &b, a)) != FC_OK) return fault;
    fault = fc_rhs(y, K[0], &b, 0, a);
    ++*nfev;
    if (fault == FC_OK) fault = fc_check(K[0], FC_D);
    if (fault != FC_OK) return fault;
#if FC_ADAPTIVE
    h = a->dt > 0 ? fmin(a->dt, tend - t) : fc_first_step(a, y, K, &b, tend - t, nfev);
#else
    h = a->dt;
#endif
    (void)errold; (void)rejected;
    for (;;) {
        /* the Ctrl-C flag every 64 accepted steps: a volatile load a step shows on a cheap field */
        if ((*nsteps & 63) == 0 && a->interrupt && *a->interrupt) return FC_INTERRUPTED;
        /* land exactly on the next output (with dense output, on the end only); a remainder
           within rounding of a full step joins it */
        double tgt = FC_DENSE ? tend : a->tout[k_out];
        h_try = t + h * (1 + 1e-9) < tgt ? h : tgt - t;
        fault = fc_attempt(y, K, h_try, ynew, &b, &bnew, a, nfev);
#if FC_ADAPTIVE
        if (fault == FC_OK) fault = fc_check(ynew, FC_D);
        const double err = fault == FC_OK ? fc_error(y, ynew, K, h_try, a) : 0.0;
        if (fault != FC_OK || !(err <= 1.0)) {
            ++*nreject;
            h = (fault != FC_OK || !isfinite(err)) ? FC_SHRINK_ON_FAULT * h_try
                : h_try * fmax(FC_FACMIN, FC_SAFETY * pow(err, -FC_ALPHA));
            rejected = 1;
            if (h < 10 * FC_EPS * fmax(fabs(t), 1.0))
                return fault == FC_SINGULAR ? FC_SINGULAR : FC_STEP_UNDERFLOW;
            continue;
        }
        double fac = err == 0 ? FC_FACMAX : FC_SAFETY * pow(err, -FC_ALPHA) * pow(errold, FC_BETA);
        fac = fmin(rejected ? 1.0 : FC_FACMAX, fmax(FC_FACMIN, fac));
        errold = fmax(err, FC_ERR_OLD_START);
        rejected = 0;
        if (h_try == h || fac < 1) h = h_try * fac;   /* a step cut short for an output keeps its h */
#else
        if (fault == FC_OK && FC_DENSE) fault = fc_check(ynew, FC_D);   /* before interpolating */
        if (fault != FC_OK) return fault;
#endif
#if FC_DENSE
        while (k_out < a->nout - 1 && a->tout[k_out] <= t + h_try) {
            fc_dense(y, K, (a->tout[k_out] - t) / h_try, h_try, Y + k_out * FC_D);
            k_out++;
        }
        tgt = tend;
#endif
        t = h_try == tgt - t ? tgt : t + h_try;
        ++*nsteps;
        double norm2 = 0, fmax_ = 0, ymax = 0;
        for (int k = 0; k < FC_D; k++) {
            y[k] = ynew[k];
            K[0][k] = K[FC_STAGES][k];
            norm2 += fc_abs2(y[k]);
            fmax_ = fc_max(fmax_, fc_abs(K[0][k]));
            ymax = fc_max(ymax, fc_abs(y[k]));
        }
        b = bnew;
        /* one compare a step: escaped, or (fixed steps) a non-finite state; no sqrt */
        const int escaped = !(norm2 <= r2);
        if (escaped && fc_check(y, FC_D) != FC_OK) return FC_NONFINITE;
        if (t == tgt) {
            for (int k = 0; k < FC_D; k++) Y[k_out * FC_D + k] = y[k];
            if (++k_out == a->nout && !escaped) return FC_OK;
        }
        if (escaped) return FC_ESCAPED;
        if (*nsteps >= a->max_steps) return FC_MAX_STEPS;
        if (a->rest_tol > 0) {
            resting = fmax_ <= a->rest_tol * (1 + ymax) ? resting + 1 : 0;
            if (resting >= a->rest_window) {
                if (fc_check(K[0], FC_D) != FC_OK) return FC_NONFINITE;   /* a NaN drops out of fc_max */
                for (; k_out < a->nout; k_out++)
                    for (int k = 0; k < FC_D; k++) Y[k_out * FC_D + k] = y[k];
                return FC_OK;
            }
        }
    }
}

FC_FN void fc_solve_one(const fc_args *a, fc_int64 i, const fc_s *y0, fc_s *Y, int *status,
                        fc_int64 *nfev, fc_int64 *nsteps, fc_int64 *nreject)
{
    fc_int64 nf = 0, ns = 0, nr = 0;
    status[i] = fc_integrate(a, y0 + i * FC_D, Y + i * a->nout * FC_D, &nf, &ns, &nr);
    nfev[i] = nf;
    nsteps[i] = ns;
    nreject[i] = nr;
}

#ifdef FC_CUDA
extern "C" __global__ void fc_solve_gpu(const double *r, const fc_int64 *n_args, const double *tout,
                                        fc_int64 n, const fc_s *y0, fc_s *Y, int *status,
                                        fc_int64 *nfev, fc_int64 *nsteps, fc_int64 *nreject)
{
    const fc_int64 i = (fc_int64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const fc_args a = fc_unpack(r, n_args, tout, 0);
    fc_solve_one(&a, i, y0, Y, status, nfev, nsteps, nreject);
}
#else
/* Trajectories in parallel; each one's arithmetic is its own, so results do not depend on the
   thread count or the batch. */
int fc_solve_host(const double *r, const fc_int64 *n_args, const double *tout,
                  const volatile int *interrupt, fc_int64 n, const fc_s *y0, fc_s *Y, int *status,
                  fc_int64 *nfev, fc_int64 *nsteps, fc_int64 *nreject, int threads)
{
    const fc_args a = fc_unpack(r, n_args, tout, interrupt);
    (void)threads;
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads) if (threads > 1)
    for (fc_int64 i = 0; i < n; i++)
        fc_solve_one(&a, i, y0, Y, status, nfev, nsteps, nreject);
    return 0;
}
#endif

#endif
