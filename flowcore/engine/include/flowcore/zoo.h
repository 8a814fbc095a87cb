/* Built-in losses (flowcore's zoo), each written once for a generic SCALAR and
 * instantiated for double and double complex by including zoo_impl.h twice.
 * The derivatives are hand-derived closed forms; tests check them against sympy.
 */
#ifndef FLOWCORE_ZOO_H
#define FLOWCORE_ZOO_H

#include "flowcore_abi.h"

/* ctx of the quadratic E = 1/2 x^T A x + b^T x (A symmetric, row-major). */
typedef struct fc_quadratic_ctx {
    int64_t dim;
    const double *A;
    const double *b;
} fc_quadratic_ctx;

#define SCALAR double
#define FC_NAME(name) fc_zoo_##name##_d
#include "zoo_impl.h"
#undef SCALAR
#undef FC_NAME

#define SCALAR double complex
#define FC_NAME(name) fc_zoo_##name##_z
#include "zoo_impl.h"
#undef SCALAR
#undef FC_NAME

#endif
