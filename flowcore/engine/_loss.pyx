# cython: language_level=3
"""The loss model: E, grad E, Hessian and T[v, v] at batches of real or complex points."""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uintptr_t
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New
from flowcore.engine._abi cimport FC_ABI_VERSION, fc_eval_d, fc_eval_z, fc_loss

ABI_VERSION = FC_ABI_VERSION      # the fc_loss ABI this build speaks (flowcore_abi.h)

# Loss backends outside the engine register their constructors here (the JAX one from
# flowcore.problems.nn), so that the engine never imports the layers built on it.
_BACKENDS = {}


def register_backend(kind, constructor):
    """Make ``Loss.from_<kind>`` call ``constructor`` (e.g. 'jax': flowcore.problems.nn.loss_from_jax)."""
    _BACKENDS[kind] = constructor
from flowcore.engine._zoo cimport (
    fc_quadratic_ctx, fc_zoo_quadratic_d, fc_zoo_quadratic_z, fc_zoo_double_well_d, fc_zoo_double_well_z,
    fc_zoo_quartic_1d_d, fc_zoo_quartic_1d_z, fc_zoo_elongated_bowl_d, fc_zoo_elongated_bowl_z,
    fc_zoo_rosenbrock_d, fc_zoo_rosenbrock_z, fc_zoo_ring_saddle_d, fc_zoo_ring_saddle_z)

cnp.import_array()


cdef int _py_eval_d(const void *ctx, int64_t n, const double *x, const double *v,
                    double *E, double *g, double *H, double *T) noexcept nogil:
    with gil:
        return (<Loss>ctx)._py_call(n, False, <void*>x, <void*>v, E, g, H, T)


cdef int _py_eval_z(const void *ctx, int64_t n, const double complex *x,
                    const double complex *v, double complex *E, double complex *g,
                    double complex *H, double complex *T) noexcept nogil:
    with gil:
        return (<Loss>ctx)._py_call(n, True, <void*>x, <void*>v, E, g, H, T)


cdef object _wrap(void *p, Py_ssize_t size, bint cplx):
    """A numpy view of C memory (no copy)."""
    if cplx:
        return np.asarray(<double complex[:size]> <double complex*> p)
    return np.asarray(<double[:size]> <double*> p)


cdef class Loss:
    """A scalar loss E(θ) on C^D, evaluated at batches of points.

    Every evaluation takes θ of shape [..., D], float64 or complex128 (the
    holomorphic extension of E), and returns arrays with the same leading shape:

    * ``value(θ)``  -> E(θ)                                  [...]
    * ``grad(θ)``   -> g = ∇E(θ)                             [..., D]
    * ``hess(θ)``   -> H = ∇²E(θ)                            [..., D, D]
    * ``third(θ, v)`` -> T[v, v]_i = Σ_jk ∂³E/∂θ_i∂θ_j∂θ_k v_j v_k   [..., D]

    A non-finite point gives a non-finite row; other rows are unaffected.
    Build losses with ``Loss.from_expr``, ``Loss.from_callable`` or the zoo in
    ``flowcore.problems.losses``. Underneath, every loss is the same C struct (flowcore/include/flowcore_abi.h),
    which the engine's kernels call without the GIL.
    """

    def __init__(self):
        raise TypeError("build a Loss with Loss.from_expr, Loss.from_callable "
                        "or a constructor in flowcore.problems.losses")

    @property
    def dim(self):
        """Number of coordinates D."""
        return self.c.dim

    @property
    def expr(self):
        """The sympy expression of E, when known (None for Python callables)."""
        return self._symbolic_pair()[0]

    @property
    def vars(self):
        """The sympy symbols, in coordinate order, when known (None for Python callables)."""
        return self._symbolic_pair()[1]

    def _symbolic_pair(self):
        if callable(self._symbolic):
            expr, vars = self._symbolic()
            self._symbolic = (expr, tuple(vars))
        return self._symbolic if self._symbolic is not None else (None, None)

    @property
    def kind(self):
        """'zoo', 'compiled', 'c' (a library of yours) or 'python': where the C callback comes from."""
        return self._keep[0]

    @property
    def provides(self):
        """What this loss offers the solvers, which choose by it (never by the loss's type):
        'value', 'grad', 'hess', 'third' (T[v, v]) — every compiled, zoo or C loss, and a Python
        loss for the functions it was given —, 'hvp' (Hessian–vector products without forming H:
        a loss whose functions' owner has ``hvp``, as the JAX backend's), 'expression' (a sympy
        expression that compiled kernels inline)."""
        out = {"value", "grad"}
        if self._py is None:
            out |= {"hess", "third"}
        else:
            value, grad, hess, third, vectorized, grad_hess = self._py
            out = {name for name, f in (("value", value), ("grad", grad or grad_hess), ("hess", hess or grad_hess),
                                        ("third", third)) if f is not None}
            if hasattr(getattr(value, "__self__", None), "hvp"):
                out.add("hvp")
        if self.expr is not None:
            out.add("expression")
        return frozenset(out)

    def __repr__(self):
        return f"<flowcore.Loss {self.name!r} dim={self.c.dim} ({self.kind})>"

    def _repr_latex_(self):
        from flowcore.engine.expressions import latex_loss
        return latex_loss(self.expr, self.vars)

    def __reduce__(self):
        """Pickling (to send a loss to Dask workers): rebuilt from what defines it, never from
        pointers: the zoo from its kind and parameters, a compiled loss from its expression (the
        other process finds it in the compile cache or compiles it), a Python loss from its
        functions (lambdas need cloudpickle, as Dask uses)."""
        kind = self._keep[0]
        if kind == "zoo":
            keep = self._keep[1]
            params = keep[0] if isinstance(keep, tuple) else keep
            return _rebuild, ("zoo", self._keep[2], self.name, self.c.dim, params, self._symbolic_pair())
        if kind == "compiled":
            expr, syms = self._symbolic_pair()
            return _rebuild, ("compiled", expr, tuple(str(s) for s in syms), self.name)
        if kind == "python":
            value, grad, hess, third, vectorized, grad_hess = self._py
            return _rebuild, ("python", value, grad, hess, third, self.c.dim, vectorized, self.name, grad_hess)
        raise TypeError(f"the loss {self.name!r} calls a C library of yours through pointers, which cannot "
                        "be sent to another process; write it with Loss.from_expr (or load the library in "
                        "that process)")

    # ----------------------------------------------------------------- factories
    @staticmethod
    def _zoo(str kind, str name, int dim, params, symbolic):
        """A built-in C loss; ``symbolic()`` returns (sympy expression, symbols) when asked."""
        cdef Loss self = Loss.__new__(Loss)
        cdef cnp.ndarray p = np.ascontiguousarray(params, dtype=np.float64)
        cdef fc_quadratic_ctx *q
        keep = p
        self.name, self._symbolic, self._py = name, symbolic, None
        self.c.abi_version = FC_ABI_VERSION
        self.c.dim = dim
        self.c.ctx = <const void*> cnp.PyArray_DATA(p)
        if kind == "quadratic":
            # the ctx struct lives in a byte array kept with the parameters
            ctx_bytes = np.zeros(sizeof(fc_quadratic_ctx), dtype=np.uint8)
            q = <fc_quadratic_ctx*> cnp.PyArray_DATA(ctx_bytes)
            q.dim = dim
            q.A = <const double*> cnp.PyArray_DATA(p)
            q.b = q.A + dim * dim
            self.c.ctx = q
            keep = (p, ctx_bytes)
            self.c.eval_d, self.c.eval_z = fc_zoo_quadratic_d, fc_zoo_quadratic_z
        elif kind == "double_well":
            self.c.eval_d, self.c.eval_z = fc_zoo_double_well_d, fc_zoo_double_well_z
        elif kind == "quartic_1d":
            self.c.eval_d, self.c.eval_z = fc_zoo_quartic_1d_d, fc_zoo_quartic_1d_z
        elif kind == "elongated_bowl":
            self.c.eval_d, self.c.eval_z = fc_zoo_elongated_bowl_d, fc_zoo_elongated_bowl_z
        elif kind == "rosenbrock":
            self.c.eval_d, self.c.eval_z = fc_zoo_rosenbrock_d, fc_zoo_rosenbrock_z
        elif kind == "ring_saddle":
            self.c.eval_d, self.c.eval_z = fc_zoo_ring_saddle_d, fc_zoo_ring_saddle_z
        else:
            raise ValueError(f"unknown zoo loss {kind!r}")
        self._keep = ("zoo", keep, kind)
        return self

    @staticmethod
    def _compiled(str name, int dim, object lib, uintptr_t addr_d, uintptr_t addr_z, expr, vars):
        cdef Loss self = Loss.__new__(Loss)
        self.name, self._symbolic, self._py = name, (expr, tuple(vars)), None
        self.c.abi_version = FC_ABI_VERSION
        self.c.dim = dim
        self.c.ctx = NULL
        self.c.eval_d = <fc_eval_d> addr_d
        self.c.eval_z = <fc_eval_z> addr_z
        self._keep = ("compiled", lib)
        return self

    @staticmethod
    def from_expr(expr, vars=None, name=None, max_ops=5000):
        """Compile a sympy expression (or a string) into a C loss.

        The gradient, Hessian and T[v, v] = ∇_θ (vᵀ H v) are derived by sympy,
        common subexpressions are eliminated (``sympy.cse``), and C code for
        float64 and complex128 points is compiled once and cached on disk
        (``$FLOWCORE_CACHE``, default ``~/.cache/flowcore``).

        ``vars``: coordinate names in order; default the free symbols sorted by name.
        Only holomorphic functions are accepted (exp, log, trig, hyperbolic and
        their inverses, powers), since flows such as the PF evaluate E at complex points.
        Text is read by a restricted grammar, never evaluated as Python.

        ``max_ops``: refuse expressions whose size (sympy operations × D², the work of H and
        T) would take over about a minute to generate and compile; ``None`` lifts the bound.
        """
        from flowcore.engine import _codegen          # (sympy and the compiler: loaded on first use)
        label, D, lib, eval_d, eval_z, e, syms = _codegen.compile_loss(expr, vars, name, max_ops)
        return Loss._compiled(label, D, lib, eval_d, eval_z, e, syms)

    @staticmethod
    def from_library(library, symbol, name=None):
        """A loss written in C outside flowcore: ``symbol`` names an exported ``fc_loss`` struct
        (``flowcore_abi.h``, in :func:`flowcore.get_include`) of the shared library ``library``
        (a path or a loaded ``ctypes.CDLL``, kept alive by the loss). Its ``abi_version`` must be
        this flowcore's (``FC_ABI_VERSION``); kernels then call it without the GIL, like the zoo.
        See docs/c_abi.md for a complete example."""
        import ctypes
        lib = library if isinstance(library, ctypes.CDLL) else ctypes.CDLL(str(library))
        try:
            addr = ctypes.addressof(ctypes.c_char.in_dll(lib, symbol))
        except ValueError:
            raise ValueError(f"the library {lib._name!r} exports no symbol {symbol!r} (an fc_loss struct)") from None
        return Loss._from_struct(<uintptr_t> addr, name or symbol, lib)

    @staticmethod
    def from_capsule(capsule, name="capsule", keep=None):
        """A loss from a PyCapsule named ``"flowcore.fc_loss"`` holding a pointer to an fc_loss
        struct (the way another C extension hands its loss over, as with scipy's
        LowLevelCallable). ``keep``: an object the struct's memory depends on (kept alive)."""
        if not PyCapsule_IsValid(capsule, b"flowcore.fc_loss"):
            raise TypeError("capsule must be a PyCapsule named 'flowcore.fc_loss' pointing to an fc_loss")
        return Loss._from_struct(<uintptr_t> PyCapsule_GetPointer(capsule, b"flowcore.fc_loss"), name,
                                 (capsule, keep))

    @staticmethod
    def _from_struct(uintptr_t addr, str name, keep):
        cdef const fc_loss *src = <const fc_loss*> addr
        if src == NULL:
            raise ValueError("NULL fc_loss")
        if src.abi_version != FC_ABI_VERSION:
            raise ValueError(f"the loss {name!r} was built for flowcore loss ABI version {src.abi_version}; "
                             f"this flowcore speaks version {FC_ABI_VERSION}: rebuild it against "
                             "flowcore.get_include()")
        if src.dim < 1 or src.eval_d == NULL or src.eval_z == NULL:
            raise ValueError(f"the loss {name!r} needs dim >= 1 and both eval_d and eval_z (got dim "
                             f"{src.dim})")
        cdef Loss self = Loss.__new__(Loss)
        self.name, self._symbolic, self._py = name, None, None
        self.c = src[0]                       # a copy of the struct; ctx still points into `keep`
        self._keep = ("c", keep)
        return self

    @property
    def capsule(self):
        """This loss's fc_loss struct as a PyCapsule named ``"flowcore.fc_loss"`` (for C code
        that wants to call it; the loss must outlive the capsule's use)."""
        return PyCapsule_New(<void*> &self.c, b"flowcore.fc_loss", NULL)

    @staticmethod
    def from_jax(fn, dim, *, name="jax", holomorphic=True):
        """A loss from a JAX function ``fn(theta) -> scalar`` of the flat parameters θ [dim]:
        E, ∇E, H and T[v, v] by JAX autodiff, at real and (holomorphic) complex points. See
        :func:`flowcore.problems.nn.loss_from_jax` (the ``nn`` extra)."""
        if _BACKENDS.get("jax") is None:
            raise ImportError("Loss.from_jax needs flowcore's JAX backend: import flowcore (it registers "
                              "flowcore.problems.nn), and install the nn extra (pip install 'flowcore[nn]')")
        return _BACKENDS["jax"](fn, dim, name=name, holomorphic=holomorphic)

    @property
    def functions(self):
        """(value, grad, hess, third): the Python functions of a loss made from them
        (:meth:`from_callable`, :meth:`from_jax`); None for a compiled or C loss."""
        return None if self._py is None else tuple(self._py[:4])

    @staticmethod
    def from_callable(value, grad, hess=None, third=None, *, int dim, bint vectorized=False,
                      str name="python", grad_hess=None):
        """A loss from Python functions: the slow fallback, same API and C ABI.

        With ``vectorized=False`` each function gets one point θ [D] (real or
        complex) and returns E (scalar), g [D], H [D, D] or T[v, v] [D]
        (``third(θ, v)``). With ``vectorized=True`` they get a block [n, D] and
        return [n], [n, D], [n, D, D], [n, D]. ``hess``/``third`` may be omitted;
        asking for them then raises NotImplementedError. ``grad_hess`` (vectorized only): one
        function returning (g [n, D], H [n, D, D]), called instead of the two when a kernel asks
        for both at once (the principal flow for D > 2) — one call where each costs a dispatch,
        as a JAX function's does.
        """
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if grad_hess is not None and not vectorized:
            raise ValueError("grad_hess is called on blocks of points: pass vectorized=True with it")
        for label, f in (("value", value), ("grad", grad), ("hess", hess), ("third", third),
                         ("grad_hess", grad_hess)):
            if f is not None and not callable(f):
                raise TypeError(f"{label} must be callable or None, got {type(f).__name__}")
        cdef Loss self = Loss.__new__(Loss)
        self.name, self._symbolic = name, None
        self._py = (value, grad, hess, third, vectorized, grad_hess)
        self.c.abi_version = FC_ABI_VERSION
        self.c.dim = dim
        self.c.ctx = <const void*> self      # borrowed: a kernel holds the Loss while it calls
        self.c.eval_d = _py_eval_d
        self.c.eval_z = _py_eval_z
        self._keep = ("python",)
        return self

    # ------------------------------------------------------ Python fallback glue
    cdef int _py_call(self, long n, bint cplx, void *x, void *v, void *E, void *g, void *H,
                      void *T) noexcept:
        cdef Py_ssize_t D = self.c.dim
        value, grad, hess, third, vectorized, grad_hess = self._py
        cdef void *outs[4]
        outs[0], outs[1], outs[2], outs[3] = E, g, H, T
        cdef int k
        try:
            X = _wrap(x, n * D, cplx).reshape(n, D)
            V = _wrap(v, n * D, cplx).reshape(n, D) if T != NULL else None
            if grad_hess is not None and g != NULL and H != NULL:
                G, HH = grad_hess(X)
                _wrap(g, n * D, cplx).reshape(n, D)[...] = G
                _wrap(H, n * D * D, cplx).reshape(n, D, D)[...] = HH
                outs[1] = outs[2] = NULL
            specs = ((value, (n,), "value"), (grad, (n, D), "grad"),
                     (hess, (n, D, D), "hess"), (third, (n, D), "third"))
            for k in range(4):
                if outs[k] == NULL:
                    continue
                f, shape, label = specs[k]
                if f is None:
                    raise NotImplementedError(
                        f"this Python loss has no {label} function; pass {label}= to Loss.from_callable")
                res = _wrap(outs[k], int(np.prod(shape)), cplx).reshape(shape)
                args = (X, V) if k == 3 else (X,)
                if vectorized:
                    res[...] = f(*args)
                else:
                    for i in range(n):
                        res[i] = f(*(a[i] for a in args))
            return 0
        except BaseException as exc:    # re-raised by the caller, with the GIL
            self._error = exc
            return -1

    def _take_error(self):
        """The exception a Python callback raised during the last kernel call (cleared)."""
        err, self._error = self._error, None
        return err

    # ------------------------------------------------------------- evaluation
    def _evaluate(self, theta, v, bint want_E, bint want_g, bint want_H, bint want_T):
        cdef Py_ssize_t D = self.c.dim
        th = _as_points(theta, D, "theta")
        lead = th.shape[:-1]
        if want_T:
            vv = _as_points(v, D, "v")
            if vv.shape != th.shape:
                vv = np.broadcast_to(vv, th.shape)
            if np.iscomplexobj(vv) and not np.iscomplexobj(th):
                th = th.astype(np.complex128)
        cdef bint cplx = np.iscomplexobj(th)
        dtype = np.complex128 if cplx else np.float64
        cdef cnp.ndarray X = np.ascontiguousarray(th.reshape(-1, D), dtype=dtype)
        cdef cnp.ndarray V = (np.ascontiguousarray(vv.reshape(-1, D), dtype=dtype)
                              if want_T else X)
        cdef int64_t n = X.shape[0]
        outs = [np.empty((n,) + s, dtype) if w else None
                for w, s in ((want_E, ()), (want_g, (D,)), (want_H, (D, D)), (want_T, (D,)))]
        cdef void *p[4]
        for k in range(4):
            p[k] = cnp.PyArray_DATA(outs[k]) if outs[k] is not None else NULL
        cdef void *px = cnp.PyArray_DATA(X)
        cdef void *pv = cnp.PyArray_DATA(V)
        cdef int rc
        self._error = None
        if n > 0:
            with nogil:
                if cplx:
                    rc = self.c.eval_z(self.c.ctx, n, <double complex*>px, <double complex*>pv,
                                       <double complex*>p[0], <double complex*>p[1],
                                       <double complex*>p[2], <double complex*>p[3])
                else:
                    rc = self.c.eval_d(self.c.ctx, n, <double*>px, <double*>pv, <double*>p[0],
                                       <double*>p[1], <double*>p[2], <double*>p[3])
            if rc != 0:
                err, self._error = self._error, None
                if err is not None:
                    raise err
                raise RuntimeError(f"loss {self.name!r} failed with code {rc}")
        return [o.reshape(lead + o.shape[1:]) if o is not None else None for o in outs]

    def value(self, theta):
        """E(θ) for θ [..., D] -> [...]."""
        return self._evaluate(theta, None, True, False, False, False)[0]

    def grad(self, theta):
        """∇E(θ) for θ [..., D] -> [..., D]."""
        return self._evaluate(theta, None, False, True, False, False)[1]

    def hess(self, theta):
        """∇²E(θ) for θ [..., D] -> [..., D, D]."""
        return self._evaluate(theta, None, False, False, True, False)[2]

    def third(self, theta, v):
        """T[v, v] = ∇³E(θ)[v, v] for θ, v [..., D] -> [..., D] (v broadcasts against θ)."""
        return self._evaluate(theta, v, False, False, False, True)[3]

    def evaluate(self, theta, v=None, *, value=True, grad=True, hess=False):
        """Several quantities in one C call: returns (E, g, H, T) with None for the skipped ones.

        T[v, v] is computed when ``v`` is given."""
        return tuple(self._evaluate(theta, v, value, grad, hess, v is not None))

    def __call__(self, theta):
        return self.value(theta)


_REBUILT = {}     # compiled losses unpickled in this process, by (expression, variables, name)


def _rebuild(kind, *args):
    """The inverse of Loss.__reduce__."""
    if kind == "zoo":
        zoo_kind, name, dim, params, symbolic = args
        return Loss._zoo(zoo_kind, name, dim, params, symbolic)
    if kind == "compiled":
        expr, vars, name = args
        if args not in _REBUILT:           # each Dask task unpickles its loss: derive it once
            _REBUILT[args] = Loss.from_expr(expr, vars=vars, name=name)
        return _REBUILT[args]
    value, grad, hess, third, dim, vectorized, name, grad_hess = args
    return Loss.from_callable(value, grad, hess, third, dim=dim, vectorized=vectorized, name=name,
                              grad_hess=grad_hess)


def _as_points(x, Py_ssize_t D, str label):
    """Validate an array of points [..., D] (real or complex)."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"{label} must be a numeric array of shape [..., {D}], got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[-1] != D:
        if a.ndim == 0 and D == 1:
            return a.reshape(1).astype(np.complex128 if np.iscomplexobj(a) else np.float64)
        raise ValueError(f"{label} must have shape [..., {D}] (last axis = loss.dim = {D}), "
                         f"got shape {a.shape}; reshape it, e.g. {label}.reshape(-1, {D})")
    return a
