from libc.stdint cimport int64_t
from flowcore.engine._loss cimport Loss
from flowcore.engine._abi cimport fc_field_d, fc_field_z

cdef class Field:
    cdef readonly int dim
    cdef readonly bint is_complex     # values are complex even at real points (the PF)
    cdef readonly int nstate          # complex numbers of branch state per trajectory (0: none)
    cdef readonly str name
    cdef object _error
    # Evaluate a block of n points; status[i] gets FC_OK / FC_NONFINITE / FC_SINGULAR.
    # state: [n, nstate] branch state to continue from (NULL: the pointwise rule).
    # Return 0, or -1 with a Python exception stored (raised by the caller).
    cdef int eval_d(self, int64_t n, const double *x, double *out, int *status) noexcept nogil
    cdef int eval_z(self, int64_t n, const double complex *x, const double complex *state,
                    double complex *out, int *status) noexcept nogil
    # Branch state at points (init) or continued to accepted points (accept, in place).
    cdef int branch(self, int64_t n, const double complex *x, double complex *state,
                    bint init, int *status) noexcept nogil
    # eval_z, and state_out [n, nstate] = state continued to x (what accepting x would give),
    # from the one evaluation: an integrator's last stage carries its step's new branch state.
    cdef int eval_advance(self, int64_t n, const double complex *x, const double complex *state,
                          double complex *state_out, double complex *out, int *status) noexcept nogil

cdef class SpectralFlow(Field):
    cdef readonly Loss loss
    cdef readonly double lr
    cdef readonly str kind            # 'poly', 'pf' or 'user'
    cdef int kcode                    # 0 poly, 1 pf, 2 user
    cdef double[::1] coef             # poly: alpha(z) = sum_p coef[p] z^p
    cdef readonly double np_coef      # non-principal term: np_coef * T[g, g]
    cdef object alpha                 # user: callable alpha(z [n, D]) -> [n, D]
    cdef int _pf_eval(self, int64_t n, const double complex *x, const double complex *state,
                      double complex *state_out, double complex *out, int *status) noexcept nogil
    cdef int _pf_rows(self, int64_t n, const double complex *g, const double complex *H,
                      const double complex *state_in, double complex *state_out,
                      double complex *out, int *status) noexcept nogil
    cdef int _user_block(self, int64_t n, void *x, bint cplx, void *out, int *status) noexcept nogil

cdef class ExprField(Field):
    cdef fc_field_d fd
    cdef fc_field_z fz
    cdef object lib
    cdef readonly object exprs, vars

cdef class PyField(Field):
    cdef object f
    cdef bint vectorized
    cdef int _call(self, int64_t n, void *x, bint cplx, void *out, int *status) noexcept nogil

cdef class StatefulPyField(Field):
    cdef readonly object impl
    cdef int _call(self, int64_t n, const double complex *x, const double complex *state,
                   double complex *state_out, double complex *out, int *status) noexcept nogil
