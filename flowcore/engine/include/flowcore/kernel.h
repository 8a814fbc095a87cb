/* What every generated kernel shares, before its problem is defined: the scalar type, the
 * statuses, the run-time arguments and small helpers. The generator defines, before including:
 *
 *   FC_D        dimension               FC_COMPLEX  1: the state is complex128, 0: float64
 *
 * then defines the problem (fc_branch, fc_branch_init, fc_rhs) and the method (fc_attempt,
 * fc_error, fc_dense), and includes the loop (rk.h or maps.h). Nothing here depends on the
 * target: see target.h.
 */
#ifndef FLOWCORE_KERNEL_H
#define FLOWCORE_KERNEL_H
#include "target.h"

#if FC_COMPLEX
typedef fc_z fc_s;
#define fc_abs(v) fc_cabs(v)
#define fc_abs_lane(v) fc_cabs_lane(v)
#define fc_abs2(v) (fc_re(v) * fc_re(v) + fc_im(v) * fc_im(v))
#define fc_finite(v) ((isfinite(fc_re(v)) != 0) & (isfinite(fc_im(v)) != 0))   /* & : no branch */
#else
typedef double fc_s;
#define fc_abs(v) fabs(v)
#define fc_abs_lane(v) fabs(v)
#define fc_abs2(v) ((v) * (v))
#define fc_finite(v) isfinite(v)
#endif

/* the values of flowcore.Status (and of flowcore_abi.h's fc_status) */
enum { FC_OK = 0, FC_ESCAPED = 1, FC_MAX_STEPS = 2, FC_STEP_UNDERFLOW = 3, FC_NONFINITE = 4,
       FC_SINGULAR = 5, FC_INTERRUPTED = 6 };

/* Run-time arguments: changing any of them never recompiles. They travel as two flat arrays
 * (doubles, integers) so the host and the GPU entry points take the same thing. */
enum { FC_R_LR, FC_R_NP, FC_R_T0, FC_R_DT, FC_R_RTOL, FC_R_ATOL, FC_R_RADIUS, FC_R_REST_TOL, FC_NR };
enum { FC_I_MAX_STEPS, FC_I_NOUT, FC_I_REST_WINDOW, FC_NI };

typedef struct {
    double lr, np_coef;           /* the flow's learning rate h and non-principal coefficient */
    double t0, dt, rtol, atol, radius;
    double rest_tol;              /* 0: no rest test */
    fc_int64 max_steps, nout, rest_window;
    const double *tout;           /* [nout] output times after t0 */
    const volatile int *interrupt;  /* host: the Ctrl-C flag; NULL on the GPU */
} fc_args;

FC_FN fc_args fc_unpack(const double *r, const fc_int64 *n, const double *tout,
                        const volatile int *interrupt)
{
    fc_args a;
    a.lr = r[FC_R_LR]; a.np_coef = r[FC_R_NP]; a.t0 = r[FC_R_T0]; a.dt = r[FC_R_DT];
    a.rtol = r[FC_R_RTOL]; a.atol = r[FC_R_ATOL]; a.radius = r[FC_R_RADIUS];
    a.rest_tol = r[FC_R_REST_TOL];
    a.max_steps = n[FC_I_MAX_STEPS]; a.nout = n[FC_I_NOUT]; a.rest_window = n[FC_I_REST_WINDOW];
    a.tout = tout; a.interrupt = interrupt;
    return a;
}

/* max of two finite numbers: a compare, where fmax is a library call (its NaN rules) */
FC_FN double fc_max(double a, double b) { return a > b ? a : b; }

/* |z| for code in loops over lanes (the error norm): fc_cabs's sqrt(re² + im²) where that is
   safe, else scaled by the larger part, with no library call (fc_cabs calls cabs there), so
   that the loop vectorises; an infinite part gives inf, a NaN NaN. Not cabs's last bit. */
FC_FN double fc_cabs_lane(fc_z z)
{
    const double x = fabs(fc_re(z)), y = fabs(fc_im(z)), s = x * x + y * y;
    const double m = fc_gt(y, x) ? y : x, mm = fc_gt(m, 0) ? m : 1.0;
    const double u = x / mm, v = y / mm, scaled = m * sqrt(u * u + v * v);
    const int safe = fc_gt(s, 1e-290) & fc_lt(s, 1e290);     /* fc_cabs's FC_SAFE_NORM2, quietly */
    return safe ? sqrt(s) : (isinf(x) | isinf(y)) ? INFINITY : scaled;
}

/* status of a computed vector: FC_OK when every entry is finite */
FC_FN int fc_check(const fc_s *v, int n)
{
    for (int k = 0; k < n; k++)
        if (!fc_finite(v[k])) return FC_NONFINITE;
    return FC_OK;
}

/* coordinate k of a lane-strided vector (FC_W trajectories in structure-of-arrays layout) */
#define FC_L(k) ((k) * FC_W)
#define FC_KS(j, k) (((j) * FC_D + (k)) * FC_W)    /* coordinate k of stage j in rk.h's K */

/* status of a lane-strided vector: FC_OK when every entry is finite */
FC_FN int fc_check_lane(const fc_s *v)
{
    int ok = 1;
    FC_UNROLL
    for (int k = 0; k < FC_D; k++) ok &= fc_finite(v[FC_L(k)]);
    return ok ? FC_OK : FC_NONFINITE;
}

/* The stochastic kernels' recording: out[o] = x at step k whenever k == next, the save list's
   next entry (increasing steps; a step may repeat), then next moves on (−1: none left) */
FC_FN void fc_record(fc_int64 k, const double *x, double *out, fc_int64 *o, fc_int64 *next,
                     fc_int64 nsave, const fc_int64 *save)
{
    while (k == *next) {
        for (int q = 0; q < FC_D; q++) out[*o * FC_D + q] = x[q];
        *next = ++*o < nsave ? save[*o] : -1;
    }
}

/* why a state failed ‖x‖² ≤ r² (one compare in the hot loop): a NaN somewhere, or escaped */
FC_FN int fc_stop_status(const double *x)
{
    for (int q = 0; q < FC_D; q++)
        if (!isfinite(x[q])) return FC_NONFINITE;
    return FC_ESCAPED;
}

/* The starts a thread takes, one at a time: [next, end) first (on CUDA its own trajectory),
   then, on the host, chunks from a counter shared by the threads (NULL: none). Which thread
   takes a start never changes its arithmetic. */
typedef struct {
    fc_int64 next, end, n;
    fc_int64 *shared;
} fc_work;

#define FC_CHUNK 64

/* the next start, or -1 when none is left */
FC_FN fc_int64 fc_take(fc_work *w)
{
    if (w->next == w->end && w->shared) {
        fc_int64 got;
#ifndef FC_CUDA
#pragma omp atomic capture
#endif
        { got = *w->shared; *w->shared += FC_CHUNK; }
        w->next = got < w->n ? got : w->n;
        w->end = got + FC_CHUNK < w->n ? got + FC_CHUNK : w->n;
        if (got >= w->n) w->shared = 0;   /* used up for good: no atomic a lane-step in the tail */
    }
    return w->next < w->end ? w->next++ : -1;
}

#endif
