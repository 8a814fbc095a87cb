from flowcore.engine._abi cimport fc_loss

cdef class Loss:
    cdef fc_loss c                 # the C ABI struct kernels call, without the GIL
    cdef object _keep              # what ctx points into (parameter arrays, shared library)
    cdef object _py                # Python fallback callables, or None
    cdef object _error             # exception raised inside a Python callback
    cdef readonly str name
    cdef object _symbolic          # (sympy expression of E, symbols) or a function making them
                                   # on first use (the zoo: sympy is imported only when needed)
    cdef int _py_call(self, long n, bint cplx, void *x, void *v, void *E, void *g, void *H, void *T) noexcept
