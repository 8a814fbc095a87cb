# Declarations of the C loss ABI (flowcore/include/flowcore_abi.h), the spectral helpers and the
# Ctrl-C flag. The zoo's declarations are in _zoo.pxd: only _loss needs (and compiles) them.
from libc.stdint cimport int32_t, int64_t

cdef extern from "flowcore_abi.h" nogil:
    int FC_ABI_VERSION
    ctypedef int (*fc_eval_d)(const void *ctx, int64_t n, const double *x, const double *v,
                              double *E, double *g, double *H, double *T) noexcept nogil
    ctypedef int (*fc_eval_z)(const void *ctx, int64_t n, const double complex *x,
                              const double complex *v, double complex *E, double complex *g,
                              double complex *H, double complex *T) noexcept nogil
    ctypedef struct fc_loss:
        int32_t abi_version
        int32_t dim
        const void *ctx
        fc_eval_d eval_d
        fc_eval_z eval_z

cdef extern from "flowcore_abi.h" nogil:
    ctypedef int (*fc_field_d)(const void *ctx, int64_t n, const double *x, double *out) noexcept nogil
    ctypedef int (*fc_field_z)(const void *ctx, int64_t n, const double complex *x,
                               double complex *out) noexcept nogil
    enum:
        FC_OK, FC_ESCAPED, FC_MAX_STEPS, FC_STEP_UNDERFLOW, FC_NONFINITE, FC_SINGULAR, FC_INTERRUPTED

cdef extern from "flowcore/spectral.h" nogil:
    double FC_SINGULAR_TOL
    double complex fc_log1m(double complex z)
    double complex fc_log1m_near(double complex z, double complex Lprev)
    double complex fc_phi(double complex z, double complex L)
    double complex fc_phi_divdiff(double complex z1, double complex L1, double complex z2, double complex L2)
    void fc_eigvec2(double complex a, double complex b, double complex d, double complex lam, int k, double complex *v)
    void fc_eig2(double complex a, double complex b, double complex d, double complex *l1, double complex *l2)

cdef extern from "flowcore/interrupt.h" nogil:
    int fc_sigint_seen
    int fc_interrupt_pending()
    void fc_interrupt_install()
    int fc_interrupt_restore()


cdef inline bint take_sigint():
    """Route Ctrl-C to the kernels' flag for the duration of a kernel (main thread only: Python
    delivers signals there). Returns whether it was taken."""
    import threading
    if threading.current_thread() is threading.main_thread():
        fc_interrupt_install()
        return True
    return False


cdef inline bint give_sigint(bint taken):
    """Hand SIGINT back to Python; True if Ctrl-C arrived while the kernel ran."""
    return taken and fc_interrupt_restore() != 0
