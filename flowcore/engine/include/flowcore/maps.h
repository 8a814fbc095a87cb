/* The GD-family maps: run to rest (fc.descend_to_rest, the basins of maps; on the host each
 * OpenMP thread advances FC_W starts in the lanes of a block, see fc_rest_lanes; on CUDA a thread
 * is a start, FC_W = 1) and recorded step by step (fc.descend and fa.orbit_diagram; one start at
 * a time on both targets).
 *
 * Included after the loss, generated as fc_grad(x, lr, g, H) (x lane-strided: coordinate k at
 * x[k·FC_W]; H may be NULL): g = lr ∇E (lr folded
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

/* The iterates live in lane blocks (target.h): a pointer to lane l's coordinate 0, strided by
   FC_W. ‖cur − old‖∞ ≤ tol (1 + ‖cur‖∞)? */
FC_FN int fc_recurs(double tol, const double *old, const double *cur)
{
    double scale = 0, d = 0;
    for (int k = 0; k < FC_D; k++) {
        scale = fc_max(scale, fabs(cur[k * FC_W]));     /* cur is finite here */
        d = fc_max(d, fabs(cur[k * FC_W] - old[k * FC_W]));
    }
    return d <= tol * (1 + scale);
}

/* the iterate p steps before the one in ring slot `head` sits in slot (head − p) mod FC_KEEP */
FC_FN int fc_slot(int head, int p) { return head >= p ? head - p : head - p + FC_KEEP; }

typedef double fc_ring[FC_KEEP][FC_D * FC_W];

/* The period to count at step k: the running candidate's if it still holds, else the smallest
   (all p ≤ FC_PMAX when full_test, else p = 1). ring + l: lane l's column. */
FC_FN int fc_period(double tol, fc_ring ring, int l, const double *cur, int head, fc_int64 k,
                    int full_test, int candidate)
{
    if (candidate > 0) return fc_recurs(tol, ring[fc_slot(head, candidate)] + l, cur) ? candidate : 0;
    const int top = full_test ? (k + 1 < FC_PMAX ? (int)k + 1 : FC_PMAX) : 1;
    for (int p = 1; p <= top; p++)
        if (fc_recurs(tol, ring[fc_slot(head, p)] + l, cur)) return p;
    return 0;
}

FC_FN int fc_smallest_period(double tol, fc_ring ring, int l, const double *cur, int head, int p)
{
    for (int d = 1; d < p; d++)
        if (p % d == 0 && fc_recurs(tol, ring[fc_slot(head, d)] + l, cur)) return d;
    return p;
}

/* Σ_j ‖θ_{k+2−j} − θ_{k+1−j}‖∞, j = 1..p, with θ_{k+1} = cur: the length of the last p steps,
   and the scale ‖cur‖∞ */
FC_FN double fc_path(fc_ring ring, int l, const double *cur, int head, int p, double *scale)
{
    double L = 0;
    const double *u = cur;
    *scale = 0;
    for (int q = 0; q < FC_D; q++) *scale = fc_max(*scale, fabs(cur[q * FC_W]));
    for (int j = 1; j <= p; j++) {
        const double *v = ring[fc_slot(head, j)] + l;
        double d = 0;
        for (int q = 0; q < FC_D; q++) d = fc_max(d, fabs(u[q * FC_W] - v[q * FC_W]));
        L += d;
        u = v;
    }
    return L;
}

/* the lexicographically smallest of the last p iterates, the newest in slot head (ties: the
   newest) */
FC_FN void fc_representative(fc_ring ring, int l, int head, int p, double *rep)
{
    int best = head;
    for (int back = p - 1; back >= 1; back--) {
        const int j = fc_slot(head, back);
        const double *u = ring[j] + l, *v = ring[best] + l;
        for (int k = 0; k < FC_D; k++)
            if (u[k * FC_W] != v[k * FC_W]) {
                if (u[k * FC_W] < v[k * FC_W]) best = j;
                break;
            }
    }
    for (int k = 0; k < FC_D; k++) rep[k] = ring[best][k * FC_W + l];
}

/* DAL-p's rate 2 / (hg / gn)^p, capped at cap when cap > 0; at g = 0 the cap (or 0). p = 1 and
   2 without pow: its ~20 ns of latency sit on the iteration's chain (as in _descend.pyx). */
FC_FN double fc_dal_rate(const fc_map_args *a, double hg, double gn)
{
    const double r = hg / gn, p = a->power;
    const double h = gn > 0 ? 2.0 / (p == 1 ? r : p == 2 ? r * r : pow(r, p)) : (a->cap > 0 ? a->cap : 0.0);
    return a->cap > 0 && h > a->cap ? a->cap : h;
}

/* θ ← the map's next iterate (vel: the momentum methods' velocity; both lane-strided); rate
   [FC_NRATE] ← the step's rate(s) */
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
        step += a->beta * vel[q * FC_W];
        vel[q * FC_W] = step;
#endif
        cur[q * FC_W] += step;
    }
    (void)lr; (void)vel;
#elif FC_METHOD == FC_GD       /* no velocity: β·v would cost a multiply a coordinate */
    fc_grad(cur, lr, g, 0);
    for (int q = 0; q < FC_D; q++) cur[q * FC_W] -= g[q];
    rate[0] = lr;
    (void)a; (void)vel;
#else
#if FC_METHOD == FC_NESTEROV
    double y[FC_D * FC_W];           /* lane-strided like cur (only lane 0's column is used) */
    for (int q = 0; q < FC_D; q++) y[q * FC_W] = cur[q * FC_W] + a->beta * vel[q * FC_W];
    fc_grad(y, lr, g, 0);
#else
    fc_grad(cur, lr, g, 0);
#endif
    for (int q = 0; q < FC_D; q++) {
        vel[q * FC_W] = a->beta * vel[q * FC_W] - g[q];
        cur[q * FC_W] += vel[q * FC_W];
    }
    rate[0] = lr;
#endif
}

/* ------------------------------------------------------------------------ to rest, in lanes
 * A thread advances FC_W starts together: one step of every lane is one pass of a loop over the
 * lanes that the compiler vectorises (the field's code is the same scalar text per lane), and so
 * is the common case of the rest test (the escape test, and the p = 1 recurrence while no longer
 * period is a candidate). A lane that needs more (a full test of all p, a longer candidate, an
 * escape, a confirmed rest) runs the scalar test, the same code as one start alone, so a start's
 * result does not depend on its lane, its neighbours, the width or the thread count. A lane whose
 * start has finished takes the next one at the next full-test step (as GPU threads do from a
 * persistent queue).
 * The ring of past iterates is indexed by the block's step, the same slot in every lane. */
typedef struct {
    double cur[FC_D * FC_W], vel[FC_D * FC_W], lr[FC_W];
    double run[FC_W];           /* consecutive p = 1 recurrences (the common case's streak) */
    double limit[FC_W];         /* the run at which the scalar test takes over: confirm; 0 while a
                                   period p > 1 is the candidate (every step); +inf when idle */
    fc_ring ring;
    fc_int64 start[FC_W];       /* the start a lane runs (−1: none) */
    fc_int64 entered[FC_W];     /* the block step it entered at (its step count: s − entered) */
    fc_int64 flag[FC_W];        /* 1: this step's test needs the scalar path */
    fc_int64 k[FC_W], streak[FC_W], candidate[FC_W], period[FC_W];   /* the scalar test's state */
    double path0[FC_W];
    int status[FC_W];
} fc_lanes;

/* where starts come from and results go */
typedef struct {
    const double *lr, *th0;
    double *rep;
    int *status, *nsteps, *period;
    fc_work w;                  /* which starts this thread takes */
} fc_queue;

/* the lane's start is over: its results out, the lane free */
FC_FN void fc_finish(fc_lanes *L, int l, int head, fc_queue *q)
{
    const fc_int64 i = L->start[l];
    fc_representative(L->ring, l, head, L->period[l] > 1 ? (int)L->period[l] : 1, q->rep + i * FC_D);
    /* OK with no period: its steps ran out before it came to rest */
    q->status[i] = L->status[l] == FC_OK && L->period[l] == 0 ? FC_MAX_STEPS : L->status[l];
    q->nsteps[i] = (int)L->k[l];
    q->period[i] = (int)L->period[l];
    L->start[l] = -1;
    L->limit[l] = INFINITY;
    for (int d = 0; d < FC_D; d++) L->cur[d * FC_W + l] = 0;    /* an idle lane steps from 0 */
}

/* give lane l the next start at block step s (its θ_0 into ring slot head); starts that end
   before their first step (non-finite, no steps allowed) finish here */
FC_FN void fc_fill(const fc_map_args *a, fc_lanes *L, int l, int head, fc_int64 s, fc_queue *q)
{
    fc_int64 i;
    while (L->start[l] < 0 && (i = fc_take(&q->w)) >= 0) {
        L->start[l] = i;
        L->entered[l] = s;
        L->lr[l] = q->lr[i];
        L->run[l] = 0;
        L->limit[l] = (double)a->confirm;
        L->k[l] = L->streak[l] = L->candidate[l] = L->period[l] = 0;
        L->status[l] = FC_OK;
        for (int d = 0; d < FC_D; d++) {
            L->cur[d * FC_W + l] = L->ring[head][d * FC_W + l] = q->th0[i * FC_D + d];
            L->vel[d * FC_W + l] = 0;
            if (!isfinite(q->th0[i * FC_D + d])) L->status[l] = FC_NONFINITE;
        }
        if (L->status[l] != FC_OK || a->steps == 0) fc_finish(L, l, head, q);
    }
}

/* The rest test's common case after a step, branch-free so that the loop over lanes is
   vectorised: the escape test and the p = 1 recurrence, counted in `run` while no longer period
   is a candidate. Returns 1 (and changes nothing) when the lane needs the scalar test: a
   candidate p > 1, outside the radius or non-finite, a rest about to be confirmed, or (full:
   this step tests all p, at k ≡ 0 mod FC_PMAX) no p = 1 recurrence where a longer one recurs.
   back[p]: the ring slot p steps before head (full only). */
FC_FN fc_int64 fc_lane_test(const fc_map_args *a, fc_lanes *L, int l, int prev, double r2, int full,
                            const int *back, fc_int64 s)
{
    const double *cur = L->cur + l, *old = L->ring[prev] + l;       /* prev: the slot before head */
    double norm2 = 0, scale = 0, d = 0;
    for (int q = 0; q < FC_D; q++) {
        const double c = cur[q * FC_W];
        norm2 += c * c;
        scale = fc_max(scale, fabs(c));
        d = fc_max(d, fabs(c - old[q * FC_W]));
    }
    const fc_int64 rec = d <= a->tol * (1 + scale);
    const double run = rec ? L->run[l] + 1 : 0;
    /* & and | rather than && and ||: no branches */
    fc_int64 hard = !(norm2 <= r2) | (run >= L->limit[l]);   /* idle lanes step from 0 (finite) */
    if (full) {            /* the full test is due where no candidate runs (run = 0 before) */
        const fc_int64 top = s - L->entered[l] + 1;    /* p ≤ k + 1: back to θ_0 at most */
        fc_int64 longer = 0;
        for (int p = 2; p <= FC_PMAX; p++)
            longer |= (p <= top) & fc_recurs(a->tol, L->ring[back[p]] + l, cur);
        hard |= (L->run[l] == 0) & !rec & longer;
    }
    L->run[l] = hard ? L->run[l] : run;
    L->flag[l] = hard;
    return hard;
}

/* The whole rest test of one lane after step s (the scalar path, from the state before the
   step); returns whether its start is over. */
FC_FN int fc_rest_full(const fc_map_args *a, fc_lanes *L, int l, int head, double r2, fc_int64 s, int full_test)
{
    const double *cur = L->cur + l;
    const fc_int64 k = s - L->entered[l];
    if (L->candidate[l] <= 1) {      /* the common case's state as the scalar test keeps it */
        L->streak[l] = (fc_int64)L->run[l];
        L->candidate[l] = L->run[l] > 0;
    }
    L->k[l] = k + 1;
    double norm2 = 0, scale;
    for (int q = 0; q < FC_D; q++) norm2 += cur[q * FC_W] * cur[q * FC_W];
    if (!(norm2 <= r2)) {                                 /* escaped or non-finite */
        L->status[l] = FC_ESCAPED;
        for (int q = 0; q < FC_D; q++)
            if (!isfinite(cur[q * FC_W])) L->status[l] = FC_NONFINITE;
        return 1;
    }
    const int p = fc_period(a->tol, L->ring, l, cur, head, k, full_test, (int)L->candidate[l]);
    L->streak[l] = p > 0 && p == L->candidate[l] ? L->streak[l] + 1 : (p > 0);
    L->candidate[l] = p;
    if (L->streak[l] == 1 && p > 1) L->path0[l] = fc_path(L->ring, l, cur, head, p, &scale);
    if (L->streak[l] >= a->confirm) {
        const int per = fc_smallest_period(a->tol, L->ring, l, cur, head, p);
        if (per > 1 && fc_path(L->ring, l, cur, head, p, &scale) < L->path0[l] - 2 * p * a->tol * (1 + scale))
            L->streak[l] = L->candidate[l] = 0;     /* shrinking: damped, not yet at rest */
        else
            L->period[l] = per;
    }
    const int cycle = L->candidate[l] > 1;          /* a period p > 1: the scalar test every step */
    L->limit[l] = cycle ? 0.0 : (double)a->confirm;
    L->run[l] = cycle ? 0 : (double)L->streak[l];
    return L->period[l] != 0 || L->k[l] == a->steps;
}

/* Every start the queue gives, to rest: status, steps, period and the final iterate (for a
   cycle, its lexicographically smallest point, the same whatever phase it was caught in).
   Starts enter only at block steps s ≡ 0 (mod FC_PMAX), so that every lane's step count k ≡ s:
   the full test (all p, at k ≡ 0) falls on the same block step in all lanes and runs vectorised
   too. A freed lane idles until then (FC_PMAX / 2 steps on average, a few % of a start's). */
FC_FN void fc_block_step(const fc_map_args *a, fc_lanes *L, fc_queue *q, int *head, fc_int64 s,
                         fc_int64 deadline, double r2, int full)
{
    FC_SIMD
    for (int l = 0; l < FC_W; l++) {
        double rate[FC_NRATE];
        fc_map_step(a, L->lr[l], L->cur + l, L->vel + l, rate);
    }
    const int prev = *head, now = prev + 1 == FC_KEEP ? 0 : prev + 1;
    int back[FC_PMAX + 1];
    fc_int64 hard = 0;
    *head = now;
    if (full) {
        for (int p = 1; p <= FC_PMAX; p++) back[p] = fc_slot(now, p);
        FC_SIMD_ANY(hard)
        for (int l = 0; l < FC_W; l++) hard |= fc_lane_test(a, L, l, prev, r2, 1, back, s);
    } else {
        FC_SIMD_ANY(hard)
        for (int l = 0; l < FC_W; l++) hard |= fc_lane_test(a, L, l, prev, r2, 0, back, s);
    }
    for (int d = 0; d < FC_D * FC_W; d++) L->ring[now][d] = L->cur[d];
    if (!hard && s != deadline) return;
    for (int l = 0; l < FC_W; l++) {
        if (L->start[l] < 0) continue;
        if (L->flag[l]) {
            if (fc_rest_full(a, L, l, now, r2, s, full)) fc_finish(L, l, now, q);
        } else if (s + 1 - L->entered[l] == a->steps) {         /* out of steps */
            L->k[l] = a->steps;
            fc_finish(L, l, now, q);
        }
    }
}

FC_FN void fc_rest_lanes(const fc_map_args *args, fc_lanes *L, fc_queue *q)
{
    const fc_map_args A = *args, *a = &A;   /* a local copy: stores to the iterates cannot alias it */
    const double r2 = a->radius * a->radius;
    int head = 0;
    for (int l = 0; l < FC_W; l++) {
        L->start[l] = -1;
        L->flag[l] = 0;
        L->limit[l] = INFINITY;
        for (int d = 0; d < FC_D; d++) L->cur[d * FC_W + l] = 0;
    }
    for (fc_int64 s = 0, polled = -64;;) {          /* FC_PMAX steps a round, the first a full test */
        /* the Ctrl-C flag every ≥ 64 steps: a volatile load a step is measurable on a 10 ns map */
        if (s - polled >= 64 && a->interrupt) {
            polled = s;
            if (*a->interrupt) {
                for (int l = 0; l < FC_W; l++)
                    if (L->start[l] >= 0) {
                        L->status[l] = FC_INTERRUPTED;
                        L->k[l] = s - L->entered[l];
                        L->period[l] = 0;
                        fc_finish(L, l, head, q);
                    }
                /* and the starts no lane took: every start gets its status, so that the
                   caller fills nothing in before the run (a serial pass over fresh memory) */
                for (fc_int64 i; (i = fc_take(&q->w)) >= 0;) {
                    q->status[i] = FC_INTERRUPTED;
                    q->nsteps[i] = q->period[i] = 0;
                    for (int d = 0; d < FC_D; d++) q->rep[i * FC_D + d] = NAN;
                }
                return;
            }
        }
        int active = 0;
        fc_int64 deadline = -1;       /* the block step at which the first lane runs out of steps */
        for (int l = 0; l < FC_W; l++) {
            fc_fill(a, L, l, head, s, q);
            if (L->start[l] < 0) continue;
            active = 1;
            const fc_int64 last = L->entered[l] + a->steps - 1;
            deadline = deadline < 0 || last < deadline ? last : deadline;
        }
        if (!active) return;
        fc_block_step(a, L, q, &head, s++, deadline, r2, 1);
        for (int phase = 1; phase < FC_PMAX; phase++) fc_block_step(a, L, q, &head, s++, deadline, r2, 0);
    }
}

/* One start, every iterate kept (CUDA: a thread a start): X[k·xstep + q] = θ_k for
   k = 0..*nsteps (the caller fills the rest with NaN) and, when rates is not NULL,
   rates[k·rstep + j] = step k's rate(s), j < FC_NRATE. A trajectory stops with its status on
   leaving the radius or on a non-finite value; else it runs all steps. fc_record_lanes is the
   same recording for a block of FC_W starts on the host. */
FC_FN int fc_map_record(const fc_map_args *args, double lr, const double *th0, double *X, fc_int64 xstep,
                        double *rates, fc_int64 rstep, int *nsteps)
{
    const fc_map_args A = *args, *a = &A;
    double cur[FC_D * FC_W], vel[FC_D * FC_W];
    const double r2 = a->radius * a->radius;
    int status = FC_OK;
    fc_int64 k;
    for (int q = 0; q < FC_D; q++) {
        cur[q * FC_W] = X[q] = th0[q];
        vel[q * FC_W] = 0;
        if (!isfinite(th0[q])) status = FC_NONFINITE;
    }
    for (k = 0; k < a->steps && status == FC_OK; k++) {
        if ((k & 63) == 0 && a->interrupt && *a->interrupt) { status = FC_INTERRUPTED; break; }
        double rate[FC_NRATE];
        fc_map_step(a, lr, cur, vel, rate);
        if (rates)
            for (int j = 0; j < FC_NRATE; j++) rates[k * rstep + j] = rate[j];
        double norm2 = 0;
        for (int q = 0; q < FC_D; q++) {
            norm2 += cur[q * FC_W] * cur[q * FC_W];
            X[(k + 1) * xstep + q] = cur[q * FC_W];
        }
        if (!(norm2 <= r2)) status = fc_stop_status(X + (k + 1) * xstep);
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
    fc_queue q = {lr, th0, rep, status, nsteps, period, {i, i + 1, n, 0}};   /* this thread's start */
    fc_lanes L;
    fc_rest_lanes(&a, &L, &q);
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
#include <stdlib.h>
int fc_rest_host(const double *r, const fc_int64 *n_args, const double *lr,
                 const volatile int *interrupt, fc_int64 n, const double *th0, double *rep,
                 int *status, int *nsteps, int *period, int threads)
{
    const fc_map_args a = fc_map_unpack(r, n_args, interrupt);
    fc_int64 next = 0;          /* the first start no thread has taken */
    int failed = 0;
    (void)threads;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        fc_queue q = {lr, th0, rep, status, nsteps, period, {0, 0, n, &next}};
        /* its ring is FC_KEEP·D·W doubles; aligned to a cache line, so that no vector of a lane
           block straddles two (a split store is not forwarded to the next step's load: 2× slower) */
        void *mem = 0;
        fc_lanes *L = posix_memalign(&mem, 64, sizeof(fc_lanes)) == 0 ? (fc_lanes *)mem : 0;
        if (L) fc_rest_lanes(&a, L, &q);
        else failed = 1;
        free(L);
    }
    return failed ? -1 : 0;
}

/* Starts i0 .. i0 + m − 1 (m ≤ FC_W) recorded together, trajectory-major: X [n, steps + 1, D]
   and rates [n, steps, FC_NRATE] (NULL: none kept). A step of every lane is one vectorised pass
   (fc_map_step, as fc_map_record: the same arithmetic lane for lane, so a start's iterates do
   not depend on its lane or the width). The iterates of FC_REC_CHUNK steps are kept in the block
   and then written row by row (a lane's steps are contiguous in X: whole cache lines, not one
   16-byte piece of FC_W rows a step). A lane that stops (out of the radius, non-finite) stops
   being written and the block goes on without it; the block ends when its last lane stops. A
   row's entries after its stop are NaN, written here (the caller's array is uninitialised: one
   pass over the output, by the threads that own it). */
#define FC_REC_CHUNK (FC_D <= 16 ? 8 : 1)       /* divides 64: Ctrl-C is polled at k ≡ 0 (mod 64) */
FC_FN void fc_record_lanes(const fc_map_args *a, const double *lr, const double *th0, fc_int64 i0, int m,
                           double *X, double *rates, int *status, int *nsteps)
{
    const fc_int64 steps = a->steps, row = (steps + 1) * FC_D;
    const double r2 = a->radius * a->radius;
    double cur[FC_D * FC_W], vel[FC_D * FC_W], lrs[FC_W];
    double buf[FC_REC_CHUNK][FC_D * FC_W], rbuf[FC_REC_CHUNK][FC_NRATE * FC_W];
    int alive[FC_W], was[FC_W], inside[FC_W], any = 0;
    for (int l = 0; l < FC_W; l++) {
        const int used = l < m;
        lrs[l] = used ? lr[i0 + l] : 0.0;
        alive[l] = used;
        for (int q = 0; q < FC_D; q++) {             /* an unused lane steps from 0 (finite) */
            cur[q * FC_W + l] = used ? th0[(i0 + l) * FC_D + q] : 0.0;
            vel[q * FC_W + l] = 0;
        }
        if (!used) continue;
        status[i0 + l] = FC_OK;
        nsteps[i0 + l] = 0;
        for (int q = 0; q < FC_D; q++) {
            X[(i0 + l) * row + q] = cur[q * FC_W + l];
            if (!isfinite(cur[q * FC_W + l])) status[i0 + l] = FC_NONFINITE;
        }
        alive[l] = status[i0 + l] == FC_OK;
        any |= alive[l];
    }
    fc_int64 k = 0;
    while (k < steps && any) {
        if ((k & 63) == 0 && a->interrupt && *a->interrupt) {
            for (int l = 0; l < m; l++)
                if (alive[l]) { status[i0 + l] = FC_INTERRUPTED; nsteps[i0 + l] = (int)k; alive[l] = 0; }
            break;
        }
        for (int l = 0; l < m; l++) was[l] = alive[l];
        const int chunk = steps - k < FC_REC_CHUNK ? (int)(steps - k) : FC_REC_CHUNK;
        int c = 0;
        while (c < chunk) {
            int stop = 0;
            FC_SIMD_ANY(stop)
            for (int l = 0; l < FC_W; l++) {
                double r[FC_NRATE], norm2 = 0;
                fc_map_step(a, lrs[l], cur + l, vel + l, r);
                for (int j = 0; j < FC_NRATE; j++) rbuf[c][j * FC_W + l] = r[j];
                for (int q = 0; q < FC_D; q++) {
                    buf[c][q * FC_W + l] = cur[q * FC_W + l];
                    norm2 += cur[q * FC_W + l] * cur[q * FC_W + l];
                }
                inside[l] = norm2 <= r2;
                stop |= alive[l] & !inside[l];
            }
            c++;
            if (!stop) continue;
            any = 0;
            for (int l = 0; l < m; l++) {
                if (alive[l] && !inside[l]) {      /* out of the radius or non-finite: stopped */
                    double x[FC_D];
                    for (int q = 0; q < FC_D; q++) x[q] = cur[q * FC_W + l];
                    status[i0 + l] = fc_stop_status(x);
                    nsteps[i0 + l] = (int)(k + c);
                    alive[l] = 0;
                }
                any |= alive[l];
            }
            if (!any) break;
        }
        for (int l = 0; l < m; l++) {              /* the chunk's iterates, lane by lane */
            if (!was[l]) continue;
            const int upto = alive[l] ? c : (int)(nsteps[i0 + l] - k);     /* a lane stopped here: to its stop */
            double *x = X + (i0 + l) * row + (k + 1) * FC_D;
            for (int cc = 0; cc < upto; cc++)
                for (int q = 0; q < FC_D; q++) x[cc * FC_D + q] = buf[cc][q * FC_W + l];
            if (rates) {
                double *rt = rates + ((i0 + l) * steps + k) * FC_NRATE;
                for (int cc = 0; cc < upto; cc++)
                    for (int j = 0; j < FC_NRATE; j++) rt[cc * FC_NRATE + j] = rbuf[cc][j * FC_W + l];
            }
        }
        k += c;
    }
    for (int l = 0; l < m; l++) {
        const fc_int64 i = i0 + l;
        if (alive[l]) nsteps[i] = (int)k;         /* all steps (or interrupted at k, set above) */
        for (fc_int64 j = (nsteps[i] + 1) * FC_D; j < row; j++) X[i * row + j] = NAN;
        if (rates)
            for (fc_int64 j = (fc_int64)nsteps[i] * FC_NRATE; j < steps * FC_NRATE; j++)
                rates[i * steps * FC_NRATE + j] = NAN;
    }
}

/* Iterates trajectory-major, X [n, steps + 1, D] and rates [n, steps, FC_NRATE] (NULL: none
   kept); both uninitialised on entry (every entry is written: NaN after a trajectory's stop) */
int fc_record_host(const double *r, const fc_int64 *n_args, const double *lr,
                   const volatile int *interrupt, fc_int64 n, const double *th0, double *X,
                   double *rates, int *status, int *nsteps, int threads)
{
    const fc_map_args a = fc_map_unpack(r, n_args, interrupt);
    const fc_int64 blocks = (n + FC_W - 1) / FC_W;
    (void)threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (fc_int64 b = 0; b < blocks; b++) {
        const fc_int64 i0 = b * FC_W;
        fc_record_lanes(&a, lr, th0, i0, n - i0 < FC_W ? (int)(n - i0) : FC_W, X, rates, status, nsteps);
    }
    return 0;
}
#endif

#endif
