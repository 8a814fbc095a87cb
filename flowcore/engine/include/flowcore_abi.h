/* flowcore loss ABI, version 1.
 *
 * A loss is a struct of two function pointers (one for float64 points, one for
 * complex128 points, the holomorphic extension) plus an opaque context.  Every
 * call evaluates a *block* of n points laid out row-major, so the indirect call
 * is paid once per block and the loop inside the loss can vectorise.
 *
 *   x  [n, dim]        points (read)
 *   v  [n, dim]        direction for T[v, v]; read only when T != NULL
 *   E  [n]             E(x)                               (NULL: skip)
 *   g  [n, dim]        grad E(x)                          (NULL: skip)
 *   H  [n, dim, dim]   Hessian, row-major                 (NULL: skip)
 *   T  [n, dim]        T[v, v]_i = sum_jk d3E/dx_i dx_j dx_k v_j v_k (NULL: skip)
 *
 * Return 0 on success, non-zero on an error of the loss itself (the caller
 * raises).  A non-finite point is not an error: its row comes out non-finite
 * and the other rows are unaffected.  Functions must be thread-safe and must not
 * touch Python unless they take the GIL themselves (the Python fallback does).
 *
 * Built-in losses live in zoo.h; compiled sympy losses export the two symbols
 * fc_eval_d and fc_eval_z with exactly these signatures and ctx unused.
 */
#ifndef FLOWCORE_ABI_H
#define FLOWCORE_ABI_H

#include <stdint.h>
#include <complex.h>

#define FC_ABI_VERSION 1

typedef int (*fc_eval_d)(const void *ctx, int64_t n, const double *x, const double *v,
                         double *E, double *g, double *H, double *T);
typedef int (*fc_eval_z)(const void *ctx, int64_t n, const double complex *x,
                         const double complex *v, double complex *E, double complex *g,
                         double complex *H, double complex *T);

typedef struct fc_loss {
    int32_t abi_version;
    int32_t dim;
    const void *ctx;
    fc_eval_d eval_d;
    fc_eval_z eval_z;
} fc_loss;

#endif

/* Vector-field ABI (compiled sympy fields): f(x) for a block of n points, out [n, dim].
 * Compiled fields export fc_field_d and fc_field_z with these signatures. */
#ifndef FLOWCORE_FIELD_ABI
#define FLOWCORE_FIELD_ABI
typedef int (*fc_field_d)(const void *ctx, int64_t n, const double *x, double *out);
typedef int (*fc_field_z)(const void *ctx, int64_t n, const double complex *x, double complex *out);

/* Per-trajectory status codes shared by fields, integrators and optimizers. */
enum fc_status {
    FC_OK = 0, FC_ESCAPED = 1, FC_MAX_STEPS = 2, FC_STEP_UNDERFLOW = 3,
    FC_NONFINITE = 4, FC_SINGULAR = 5, FC_INTERRUPTED = 6
};
#endif
