/* The GD-family maps for one trajectory: run to rest (fc.descend_to_rest, the basins of maps;
 * entry points for the host, OpenMP, and CUDA, one thread each) and recorded step by step
 * (fc.descend and fa.orbit_diagram; entry points for both targets too).
 *
 * Included after the loss, generated as fc_grad(x, lr, g, H) (H may be NULL): g = lr ∇E (lr folded
 * into ∇E's products, off the iteration's latency chain), or ∇E for the DAL family (lr unused), with
 *   FC_METHOD  FC_GD, FC_HEAVY_BALL, FC_NESTEROV, FC_DAL, FC_DAL_MOMENTUM or FC_DAL_PER_PARAM
 *   FC_PMAX    the largest period of the rest test
 *
 * A start is at rest once ‖θ_k − θ_{k−p}‖∞ ≤ tol (1 + ‖θ_k‖∞) has held with one p ≤ FC_PMAX at
 * `confirm` consecutive steps; p is then reduced to its smallest divisor that also recurs (a
 * damped oscillation onto a fixed point passes p = 2 first). p = 1 is tested every step, all
 * p ≤ FC_PMAX every FC_PMAX steps. A cycle (p > 1) must also not have shrunk over those steps
 * (the length of its last p steps, the same at every phase of a true cycle, fell by more than the
 * tolerance): a slowly damped oscillation onto a fixed point, |1 − hλ| near 1, recurs within tol
 * with p = 2 long before it does with p = 1, and is no 2-cycle. The result is the final iterate,
 * or for a cycle its lexicographically smallest point (the same whatever phase it was caught in).
 */
#ifndef FLOWCORE_MAPS_H
#define FLOWCORE_MAPS_H

#define FC_GD 0            /* macros, not an enum: the preprocessor selects the method */
#define FC_HEAVY_BALL 1
#define FC_NESTEROV 2
#define FC_DAL 3           /* the DAL family (rates from H ĝ) from here on */
#define FC_DAL_MOMENTUM 4
#define FC_DAL_PER_PARAM 5
#if FC_METHOD == FC_DAL_PER_PARAM
#define FC_NRATE FC_D      /* rates a step: one a coordinate */
#else
#define FC_NRATE 1
#endif
enum { FC_M_BETA, FC_M_POWER, FC_M_CAP, FC_M_RADIUS, FC_M_TOL, FC_NMR };
enum { FC_M_STEPS, FC_M_CONFIRM, FC_NMI };
#define FC_KEEP (FC_PMAX + 1)

typedef struct {
    double beta, power, cap, radius, tol;
    fc_int64 steps, confirm;
    const volatile int *interrupt;
} fc_map_args;

/* ‖cur − old‖∞ ≤ tol (1 + ‖cur‖∞)? */
FC_FN int fc_recurs(double tol, const double *old, const double *cur)
{
    double scale = 0, d = 0;
    for (int k = 0; k < FC_D; k++) {
        scale = fc_max(scale, fabs(cur[k]));     /* cur is finite here */
        d = fc_max(d, fabs(cur[k] - old[k]));
    }
    return d <= tol * (1 + scale);
}

/* θ_{k+1−p} sits in ring slot (head − p) mod FC_KEEP, head = (k + 1) mod FC_KEEP (no division) */
FC_FN int fc_slot(int head, int p) { return head >= p ? head - p : head - p + FC_KEEP; }

/* The period to count at step k: the running candidate's if it still holds, else the smallest
   (all p ≤ FC_PMAX when full_test, else p = 1). */
FC_FN int fc_period(double tol, double (*ring)[FC_D], const double *cur, int head, fc_int64 k,
                    int full_test, int candidate)
{
    if (candidate > 0) return fc_recurs(tol, ring[fc_slot(head, candidate)], cur) ? candidate : 0;
    const int top = full_test ? (k + 1 < FC_PMAX ? (int)k + 1 : FC_PMAX) : 1;
    for (int p = 1; p <= top; p++)
        if (fc_recurs(tol, ring[fc_slot(head, p)], cur)) return p;
    return 0;
}

FC_FN int fc_smallest_period(double tol, double (*ring)[FC_D], const double *cur, int head, int p)
{
    for (int d = 1; d < p; d++)
        if (p % d == 0 && fc_recurs(tol, ring[fc_slot(head, d)], cur)) return d;
    return p;
}

/* Σ_j ‖θ_{k+2−j} − θ_{k+1−j}‖∞, j = 1..p, with θ_{k+1} = cur: the length of the last p steps,
   and the scale ‖cur‖∞ */
FC_FN double fc_path(double (*ring)[FC_D], const double *cur, int head, int p, double *scale)
{
    double L = 0;
    const double *u = cur;
    *scale = 0;
    for (int q = 0; q < FC_D; q++) *scale = fc_max(*scale, fabs(cur[q]));
    for (int j = 1; j <= p; j++) {
        const double *v = ring[fc_slot(head, j)];
        double d = 0;
        for (int q = 0; q < FC_D; q++) d = fc_max(d, fabs(u[q] - v[q]));
        L += d;
        u = v;
    }
    return L;
}

/* the lexicographically smallest of the last p iterates θ_{n−p+1..n} */
FC_FN void fc_representative(double (*ring)[FC_D], fc_int64 n, int p, double *rep)
{
    fc_int64 best = n;
    for (fc_int64 j = n - p + 1; j < n; j++) {
        const double *u = ring[j % FC_KEEP], *v = ring[best % FC_KEEP];
        for (int k = 0; k < FC_D; k++)
            if (u[k] != v[k]) {
                if (u[k] < v[k]) best = j;
                break;
            }
    }
    for (int k = 0; k < FC_D; k++) rep[k] = ring[best % FC_KEEP][k];
}

/* DAL-p's rate 2 / (hg / gn)^p, capped at cap when cap > 0; at g = 0 the cap (or 0). p = 1 and
   2 without pow: its ~20 ns of latency sit on the iteration's chain (as in _descend.pyx). */
FC_FN double fc_dal_rate(const fc_map_args *a, double hg, double gn)
{
    const double r = hg / gn, p = a->power;
    const double h = gn > 0 ? 2.0 / (p == 1 ? r : p == 2 ? r * r : pow(r, p)) : (a->cap > 0 ? a->cap : 0.0);
    return a->cap > 0 && h > a->cap ? a->cap : h;
}

/* θ ← the map's next iterate (vel: the momentum methods' velocity); rate [FC_NRATE] ← the
   step's rate(s) */
FC_FN void fc_map_step(const fc_map_args *a, double lr, double *cur, double *vel, double *rate)
{
    double g[FC_D];
#if FC_METHOD >= FC_DAL        /* h = 2 / ‖H ĝ‖^p, or per coordinate 2 / |(H ĝ)_q|^p */
    double H[FC_D * FC_D], Hg[FC_D], gn = 0, hg = 0;
    fc_grad(cur, 1.0, g, H);
    for (int q = 0; q < FC_D; q++) {
        double s = 0;
        for (int r = 0; r < FC_D; r++) s += H[q * FC_D + r] * g[r];
        Hg[q] = s;
        gn += g[q] * g[q];
        hg += s * s;
    }
    gn = sqrt(gn);
#if FC_METHOD == FC_DAL_PER_PARAM
    for (int q = 0; q < FC_D; q++) rate[q] = fc_dal_rate(a, fabs(Hg[q]), gn);
#else
    rate[0] = fc_dal_rate(a, sqrt(hg), gn);
#endif
    for (int q = 0; q < FC_D; q++) {
        double step = -rate[FC_NRATE == 1 ? 0 : q] * g[q];
#if FC_METHOD == FC_DAL_MOMENTUM
        step += a->beta * vel[q];
        vel[q] = step;
#endif
        cur[q] += step;
    }
    (void)lr; (void)vel;
#elif FC_METHOD == FC_GD       /* no velocity: β·v would cost a multiply a coordinate */
    fc_grad(cur, lr, g, 0);
    for (int q = 0; q < FC_D; q++) cur[q] -= g[q];
    rate[0] = lr;
    (void)a; (void)vel;
#else
#if FC_METHOD == FC_NESTEROV
    double y[FC_D];
    for (int q = 0; q < FC_D; q++) y[q] = cur[q] + a->beta * vel[q];
    fc_grad(y, lr, g, 0);
#else
    fc_grad(cur, lr, g, 0);
#endif
    for (int q = 0; q < FC_D; q++) {
        vel[q] = a->beta * vel[q] - g[q];
        cur[q] += vel[q];
    }
    rate[0] = lr;
#endif
}

/* One start: returns its status; *nsteps, *period and rep [D] are written. */
FC_FN int fc_to_rest(const fc_map_args *args, double lr, const double *th0, double *rep,
                     int *nsteps, int *period_out)
{
    const fc_map_args A = *args, *a = &A;   /* a local copy: stores to the iterates cannot alias it */
    double ring[FC_KEEP][FC_D], cur[FC_D], vel[FC_D];
    const double r2 = a->radius * a->radius;
    int status = FC_OK, candidate = 0, streak = 0, head = 0, countdown = 0, period = 0;
    double path0 = 0, scale;
    fc_int64 k, n = 0;
    for (int q = 0; q < FC_D; q++) {
        cur[q] = ring[0][q] = th0[q];
        vel[q] = 0;
        if (!isfinite(cur[q])) status = FC_NONFINITE;
    }
    for (k = 0; k < a->steps && status == FC_OK && period == 0; k++) {
        /* the Ctrl-C flag every 64 steps: a volatile load a step is measurable on a 10 ns map */
        if ((k & 63) == 0 && a->interrupt && *a->interrupt) { status = FC_INTERRUPTED; break; }
        double rate[FC_NRATE];
        fc_map_step(a, lr, cur, vel, rate);
        double norm2 = 0;
        for (int q = 0; q < FC_D; q++) norm2 += cur[q] * cur[q];
        n = k + 1;
        head = head + 1 == FC_KEEP ? 0 : head + 1;           /* (k + 1) mod FC_KEEP */
        const int full_test = countdown == 0;                 /* k mod FC_PMAX == 0 */
        countdown = countdown + 1 == FC_PMAX ? 0 : countdown + 1;
        if (!(norm2 <= r2)) status = fc_stop_status(cur);    /* one compare: escaped or non-finite */
        else {
            const int p = fc_period(a->tol, ring, cur, head, k, full_test, candidate);
            streak = p > 0 && p == candidate ? streak + 1 : (p > 0);
            candidate = p;
            if (streak == 1 && p > 1) path0 = fc_path(ring, cur, head, p, &scale);
            if (streak >= a->confirm) {
                const int per = fc_smallest_period(a->tol, ring, cur, head, p);
                if (per > 1 && fc_path(ring, cur, head, p, &scale) < path0 - 2 * p * a->tol * (1 + scale))
                    streak = candidate = 0;           /* shrinking: damped, not yet at rest */
                else
                    period = per;
            }
        }
        for (int q = 0; q < FC_D; q++) ring[head][q] = cur[q];
    }
    *nsteps = (int)n;
    *period_out = period;
    fc_representative(ring, n, period > 1 ? period : 1, rep);
    return status;
}

/* One start, every iterate kept: X[k·xstep + q] = θ_k for k = 0..*nsteps (the caller fills the
   rest with NaN) and, when rates is not NULL, rates[k·rstep + j] = step k's rate(s), j < FC_NRATE.
   A trajectory stops with its status on leaving the radius or on a non-finite value; else it
   runs all steps. */
FC_FN int fc_map_record(const fc_map_args *args, double lr, const double *th0, double *X, fc_int64 xstep,
                        double *rates, fc_int64 rstep, int *nsteps)
{
    const fc_map_args A = *args, *a = &A;
    double cur[FC_D], vel[FC_D];
    const double r2 = a->radius * a->radius;
    int status = FC_OK;
    fc_int64 k;
    for (int q = 0; q < FC_D; q++) {
        cur[q] = X[q] = th0[q];
        vel[q] = 0;
        if (!isfinite(cur[q])) status = FC_NONFINITE;
    }
    for (k = 0; k < a->steps && status == FC_OK; k++) {
        if ((k & 63) == 0 && a->interrupt && *a->interrupt) { status = FC_INTERRUPTED; break; }
        double rate[FC_NRATE];
        fc_map_step(a, lr, cur, vel, rate);
        if (rates)
            for (int j = 0; j < FC_NRATE; j++) rates[k * rstep + j] = rate[j];
        double norm2 = 0;
        for (int q = 0; q < FC_D; q++) {
            norm2 += cur[q] * cur[q];
            X[(k + 1) * xstep + q] = cur[q];
        }
        if (!(norm2 <= r2)) status = fc_stop_status(cur);
    }
    *nsteps = (int)k;
    return status;
}

FC_FN fc_map_args fc_map_unpack(const double *r, const fc_int64 *n, const volatile int *interrupt)
{
    fc_map_args a;
    a.beta = r[FC_M_BETA]; a.power = r[FC_M_POWER]; a.cap = r[FC_M_CAP];
    a.radius = r[FC_M_RADIUS]; a.tol = r[FC_M_TOL];
    a.steps = n[FC_M_STEPS]; a.confirm = n[FC_M_CONFIRM]; a.interrupt = interrupt;
    return a;
}

#ifdef FC_CUDA
extern "C" __global__ void fc_rest_gpu(const double *r, const fc_int64 *n_args, const double *lr,
                                       fc_int64 n, const double *th0, double *rep, int *status,
                                       int *nsteps, int *period)
{
    const fc_int64 i = (fc_int64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const fc_map_args a = fc_map_unpack(r, n_args, 0);
    status[i] = fc_to_rest(&a, lr[i], th0 + i * FC_D, rep + i * FC_D, nsteps + i, period + i);
}

/* Iterates step-major, X [steps + 1, n, D] and rates [steps, n, FC_NRATE] (NULL: none kept), so
   that the threads of a warp store to neighbouring addresses. */
extern "C" __global__ void fc_record_gpu(const double *r, const fc_int64 *n_args, const double *lr,
                                         fc_int64 n, const double *th0, double *X, double *rates,
                                         int *status, int *nsteps)
{
    const fc_int64 i = (fc_int64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const fc_map_args a = fc_map_unpack(r, n_args, 0);
    status[i] = fc_map_record(&a, lr[i], th0 + i * FC_D, X + i * FC_D, n * FC_D,
                              rates ? rates + i * FC_NRATE : 0, n * FC_NRATE, nsteps + i);
}
#else
int fc_rest_host(const double *r, const fc_int64 *n_args, const double *lr,
                 const volatile int *interrupt, fc_int64 n, const double *th0, double *rep,
                 int *status, int *nsteps, int *period, int threads)
{
    const fc_map_args a = fc_map_unpack(r, n_args, interrupt);
    (void)threads;
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads) if (threads > 1)
    for (fc_int64 i = 0; i < n; i++)
        status[i] = fc_to_rest(&a, lr[i], th0 + i * FC_D, rep + i * FC_D, nsteps + i, period + i);
    return 0;
}

/* Iterates trajectory-major, X [n, steps + 1, D] and rates [n, steps, FC_NRATE] (NULL: none kept) */
int fc_record_host(const double *r, const fc_int64 *n_args, const double *lr,
                   const volatile int *interrupt, fc_int64 n, const double *th0, double *X,
                   double *rates, int *status, int *nsteps, int threads)
{
    const fc_map_args a = fc_map_unpack(r, n_args, interrupt);
    const fc_int64 steps = a.steps;
    (void)threads;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads) if (threads > 1)
    for (fc_int64 i = 0; i < n; i++)
        status[i] = fc_map_record(&a, lr[i], th0 + i * FC_D, X + i * (steps + 1) * FC_D, FC_D,
                                  rates ? rates + i * steps * FC_NRATE : 0, FC_NRATE, nsteps + i);
    return 0;
}
#endif

#endif
