# The two arithmetics every kernel runs in: float64 (real fields) and complex128.
from libc.math cimport isfinite, fabs

ctypedef fused scalar:
    double
    double complex

cdef extern from "<complex.h>" nogil:
    double cabs(double complex)
    double creal(double complex)
    double cimag(double complex)


cdef inline bint _finite(scalar v) noexcept nogil:
    if scalar is double:
        return isfinite(v)
    else:
        return isfinite(creal(v)) and isfinite(cimag(v))


cdef inline double _abs(scalar v) noexcept nogil:
    if scalar is double:
        return fabs(v)
    else:
        return cabs(v)
