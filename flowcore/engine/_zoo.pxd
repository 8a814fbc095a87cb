# The built-in losses (include/flowcore/zoo.h): cimported by _loss only, so only _loss compiles their bodies.
from libc.stdint cimport int64_t

cdef extern from "flowcore/zoo.h" nogil:
    ctypedef struct fc_quadratic_ctx:
        int64_t dim
        const double *A
        const double *b
    int fc_zoo_quadratic_d(const void*, int64_t, const double*, const double*, double*, double*, double*, double*)
    int fc_zoo_quadratic_z(const void*, int64_t, const double complex*, const double complex*, double complex*, double complex*, double complex*, double complex*)
    int fc_zoo_double_well_d(const void*, int64_t, const double*, const double*, double*, double*, double*, double*)
    int fc_zoo_double_well_z(const void*, int64_t, const double complex*, const double complex*, double complex*, double complex*, double complex*, double complex*)
    int fc_zoo_quartic_1d_d(const void*, int64_t, const double*, const double*, double*, double*, double*, double*)
    int fc_zoo_quartic_1d_z(const void*, int64_t, const double complex*, const double complex*, double complex*, double complex*, double complex*, double complex*)
    int fc_zoo_elongated_bowl_d(const void*, int64_t, const double*, const double*, double*, double*, double*, double*)
    int fc_zoo_elongated_bowl_z(const void*, int64_t, const double complex*, const double complex*, double complex*, double complex*, double complex*, double complex*)
    int fc_zoo_rosenbrock_d(const void*, int64_t, const double*, const double*, double*, double*, double*, double*)
    int fc_zoo_rosenbrock_z(const void*, int64_t, const double complex*, const double complex*, double complex*, double complex*, double complex*, double complex*)
    int fc_zoo_ring_saddle_d(const void*, int64_t, const double*, const double*, double*, double*, double*, double*)
    int fc_zoo_ring_saddle_z(const void*, int64_t, const double complex*, const double complex*, double complex*, double complex*, double complex*, double complex*)
