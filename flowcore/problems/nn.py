"""Networks as flowcore losses: exact derivatives through JAX (the ``nn`` extra).

    net = fc.nn.mlp(*fc.nn.iris(), widths=(10, 10), activation="tanh", loss="cross_entropy", seed=0)
    net.loss            # an fc.Loss: E, ∇E, H and T[v, v] by autodiff, at real and complex points
    fc.descend(net.loss, net.theta0, 0.5, 100)

:func:`loss_from_jax` (also ``fc.Loss.from_jax``) turns a JAX function of the flat parameter
vector into an :class:`flowcore.Loss`. Its derivatives are JAX's, jit-compiled and vectorised over
points. The principal flow evaluates E at complex θ (the holomorphic extension), so the function is
checked for operations without one — ReLU and max (``max``), abs, sign, comparisons and ``where``,
``jax.nn.logsumexp``'s shift (``reduce_max``), real/imag/conj — and refused at complex points with
an error naming them. JAX's float64 is switched on (``jax_enable_x64``) on first use: flowcore works
in float64 and complex128.

For larger D the Hessian is not formed: :func:`hvp` (Hessian–vector products) and
:func:`top_eigenpairs` (Lanczos, scipy's ``eigsh`` on a ``LinearOperator``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flowcore.engine._loss import Loss, register_backend

__all__ = ["loss_from_jax", "is_jax", "hvp", "polynomial_flow", "matrix_free_pf", "matrix_free_by_default", "top_eigenpairs", "Network", "mlp", "cnn", "iris", "digits",
           "regression_2d", "moons", "ACTIVATIONS", "NON_HOLOMORPHIC"]

# JAX primitives without a holomorphic extension (what ReLU, abs, max-shifted logsumexp, where and
# comparisons compile to)
NON_HOLOMORPHIC = frozenset({"max", "min", "reduce_max", "reduce_min", "abs", "sign", "floor", "ceil", "round",
                             "real", "imag", "conj", "gt", "ge", "lt", "le", "clamp", "sort", "argmax", "argmin",
                             "rem", "is_finite", "select_n", "reduce_precision"})


def _jax():
    try:
        import jax
    except ImportError:
        raise ImportError("networks need JAX: pip install 'flowcore[nn]'") from None
    if not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
        _persistent_compilation_cache(jax)
    return jax


def _persistent_compilation_cache(jax):
    """JAX's compiled functions kept on disk in flowcore's private cache (``jax/`` in
    ``$FLOWCORE_CACHE``, created 0700, refused if another user owns it or can write it): a network's
    functions — its HVPs, the Arnoldi steps of the matrix-free PF — compile once per shape and
    machine, not once per process (0.2–0.5 s each, dozens of shapes in an analysis). Unless the
    process configured a cache of its own."""
    if jax.config.jax_compilation_cache_dir:
        return
    from flowcore.engine._codegen import cache_dir
    folder = cache_dir() / "jax"
    folder.mkdir(mode=0o700, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _primitives(jaxpr, out=None):
    """Names of every primitive in a jaxpr, sub-jaxprs (jit, custom_jvp, scan, cond) included."""
    out = set() if out is None else out
    for eqn in jaxpr.eqns:
        out.add(eqn.primitive.name)
        for p in eqn.params.values():
            for q in p if isinstance(p, (tuple, list)) else (p,):
                inner = getattr(q, "jaxpr", q)
                if hasattr(inner, "eqns"):
                    _primitives(inner, out)
    return out


ROWWISE_DIM = 10_000   # from this many parameters a network's functions take one point a call (JaxFunctions._call)


class JaxFunctions:
    """E, ∇E, H, T[v, v] and Hv of ``fn``, jit-compiled and vmapped over a batch of points [n, D];
    float64 points use real derivatives, complex128 points holomorphic ones."""

    def __init__(self, fn, dim, holomorphic=True):
        jax = _jax()
        import jax.numpy as jnp
        self.fn, self.dim = fn, int(dim)
        try:
            jaxpr = jax.make_jaxpr(fn)(jnp.zeros(self.dim))
        except Exception as exc:
            raise ValueError(f"fn could not be traced by JAX at a point of dimension {dim}: {exc}") from exc
        if jaxpr.out_avals[0].shape != ():
            raise ValueError(f"fn must return a scalar loss, got shape {jaxpr.out_avals[0].shape}")
        from jax.experimental import checkify           # JAX clamps an index past the end: θ[D] reads θ[D − 1]
        bad, _ = checkify.checkify(fn, errors=checkify.index_checks)(jnp.zeros(self.dim))
        if bad.get() is not None:
            raise ValueError(f"fn indexes θ (of dim = {dim} entries) out of bounds: {bad.get().strip()} "
                             "(JAX would read a clamped index silently); is dim right?")
        self.blocking = sorted(_primitives(jaxpr.jaxpr) & NON_HOLOMORPHIC)
        self.holomorphic = bool(holomorphic)

        def second(th, v):           # d²/dε² E(θ + εv)
            return jax.jvp(lambda t: jax.jvp(fn, (t,), (v,))[1], (th,), (v,))[1]

        def build(hol):
            g = jax.grad(fn, holomorphic=hol)
            both = jax.jacfwd(lambda th: (g(th), g(th)), has_aux=True, holomorphic=hol)    # (H, g), g once
            return {"value": jax.jit(jax.vmap(fn)), "grad": jax.jit(jax.vmap(g)),
                    "hess": jax.jit(jax.vmap(jax.jacfwd(g, holomorphic=hol))),
                    "hess_grad": jax.jit(jax.vmap(both)),
                    "third": jax.jit(jax.vmap(jax.grad(second, holomorphic=hol))),
                    "hvp": jax.jit(lambda th, v: jax.jvp(g, (th,), (v,))[1]),
                    "hvps": jax.jit(lambda th, V: jax.vmap(jax.linearize(g, th)[1])(V))}
        self._real = build(False)
        self._complex = None
        self._poly = {}
        self._arnoldi = {}
        self._build = build

    def _table(self, x):
        if not np.iscomplexobj(x):
            return self._real
        if not self.holomorphic or self.blocking:
            why = (f"it uses {', '.join(self.blocking)} (ReLU and max compile to max, jax.nn.logsumexp to "
                   "reduce_max, abs/where/comparisons to abs/select_n/gt...): write it with holomorphic "
                   "operations (tanh, sin, softplus, exp, log; fc.nn.mlp's activations)") if self.blocking else \
                  "it was built with holomorphic=False"
            raise ValueError(f"this JAX loss cannot be evaluated at complex points (the principal flow needs "
                             f"them): {why}, or use it only with real models (GD, NGF, IGR, the third-order flow)")
        if self._complex is None:
            self._complex = self._build(True)
        return self._complex

    @staticmethod
    def _padded(f, X, *more):
        """f (jitted, vmapped) on the rows of X (and V): the batch is padded to the next power of two
        with copies of its first row, so that the solvers' varying numbers of active trajectories
        reuse a few compiled shapes instead of compiling one per size (0.3–1 s each)."""
        n = len(X)
        m = 1 << max(n - 1, 0).bit_length()
        if m != n:
            X, *more = (np.concatenate([A, np.repeat(A[:1], m - n, axis=0)]) for A in (X, *more))
        out = f(X, *more)
        return tuple(np.asarray(o)[:n] for o in out) if isinstance(out, tuple) else np.asarray(out)[:n]

    def _call(self, name, X, *more):
        """The function ``name`` at the rows of X (and of ``more``): in one padded batch, or, from
        ROWWISE_DIM parameters, one row a call (a row's pass is then itself large matrix products,
        and XLA's batched products with per-row weights are slower: on the digits MLP, D = 85 002,
        101 loss values took 1.54 s batched and 0.50 s one by one; 8 gradients 0.17 s and 0.12 s)."""
        return self._batched(self._table(X)[name], X, *more)

    def _batched(self, f, X, *more):
        """f (jitted, vmapped) on the rows of X: see _call."""
        if self.dim < ROWWISE_DIM or len(X) <= 1:
            return self._padded(f, X, *more)
        rows = [self._padded(f, X[i:i + 1], *(A[i:i + 1] for A in more)) for i in range(len(X))]
        return tuple(map(np.concatenate, zip(*rows))) if isinstance(rows[0], tuple) else np.concatenate(rows)

    def poly_field(self, lr, coef, np_coef=0.0):
        """X [n, D] -> α(hH)g + c·T[g, g] at each row (g = ∇E, α(z) = Σ_p coef[p] z^p, c = ``np_coef``),
        by Horner on Hessian–vector products: α(hH)g = c₀g + hH(c₁g + hH(c₂g + …)), len(coef) − 1
        products, H never formed; T[g, g] = ∇_θ(gᵀH(θ)g) at fixed g by one more pass. h, the
        coefficients and c are arguments of the compiled function: a new flow or learning rate
        reuses it (one compile per degree, batch size class and real/complex)."""
        args = (np.float64(lr), np.asarray(coef, float), np.float64(np_coef))

        def evaluate(X):
            X = np.asarray(X)
            self._table(X)                                  # refuses non-holomorphic losses at complex points
            key = (len(args[1]), bool(np_coef), np.iscomplexobj(X))
            if key not in self._poly:
                self._poly[key] = self._build_poly(*key)
            return self._batched(lambda Xp: self._poly[key](Xp, *args), X)
        return evaluate

    def _build_poly(self, degree, with_t, hol):
        jax = _jax()
        g = jax.grad(self.fn, holomorphic=hol)

        def field(th, lr, coef, np_coef):
            gt = g(th)
            acc = coef[degree - 1] * gt
            for p in range(degree - 2, -1, -1):
                acc = coef[p] * gt + lr * jax.jvp(g, (th,), (acc,))[1]
            if with_t:
                v = jax.lax.stop_gradient(gt)
                second = lambda t: jax.jvp(lambda s: jax.jvp(self.fn, (s,), (v,))[1], (t,), (v,))[1]  # noqa: E731
                acc = acc + np_coef * jax.grad(second, holomorphic=hol)(th)
            return acc
        return jax.jit(jax.vmap(field, in_axes=(0, None, None, None)))

    def arnoldi(self, m_max, complex_):
        """(start, extend, combine, grown): Arnoldi on Hessian–vector products at one point, compiled
        once per (m_max, real/complex) and reused.

        ``start(x [D])`` → (g [D], V [m_max + 1, D], Hm [m_max + 1, m_max], β): ∇E, the basis with
        v₀ = g/β (β = ‖g‖), nothing else yet. ``extend(x, V, Hm, j0, j1)`` runs steps j0 … j1 − 1:
        v_{j+1} ∝ H v_j orthogonalised against v₀ … v_j twice (classical Gram–Schmidt, repeated),
        Hm[:, j] its coefficients; a step whose new vector vanishes (an invariant subspace) leaves
        v_{j+1} = 0. H·v comes from ``jax.linearize`` of ∇E at the point, so a step costs one
        forward-over-reverse product and no recomputation of the primal. At complex points
        (holomorphic derivatives) H is complex symmetric, and Arnoldi with the Hermitian inner
        product applies to it as to any matrix. V stays a JAX array; ``combine(V, c [m_max])`` →
        Σ_j c_j v_j; ``grown(V, Hm)`` → both with room for 2·m_max vectors (zeros appended), to go
        on with the functions of that size. One point per call, not a batch: a batch would be one more compiled shape per
        batch size, and tracing each shape (≈ 0.1 s) cost more than batching saved (≈ 20 % of a
        small network's products)."""
        key = (int(m_max), bool(complex_))
        if key not in self._arnoldi:
            self._arnoldi[key] = self._build_arnoldi(*key)
        return self._arnoldi[key]

    def _build_arnoldi(self, m_max, hol):
        jax = _jax()
        import jax.numpy as jnp
        g = jax.grad(self.fn, holomorphic=hol)
        dtype = jnp.complex128 if hol else jnp.float64

        def start(th):
            gt = g(th)
            beta = jnp.linalg.norm(gt)
            V = jnp.zeros((m_max + 1, th.shape[0]), dtype).at[0].set(jnp.where(beta > 0, gt / beta, 0))
            return gt, V, jnp.zeros((m_max + 1, m_max), dtype), beta

        def extend(th, V, Hm, j0, j1):
            _, hvp = jax.linearize(g, th)
            rows = jnp.arange(m_max + 1)

            def step(j, carry):
                V, Hm = carry
                w = hvp(V[j])
                keep = (rows <= j).astype(V.real.dtype)
                c = (V.conj() @ w) * keep
                w = w - c @ V
                c2 = (V.conj() @ w) * keep
                w = w - c2 @ V
                nrm = jnp.linalg.norm(w)
                Hm = Hm.at[:, j].set(c + c2).at[j + 1, j].set(nrm)
                V = V.at[j + 1].set(jnp.where(nrm > 0, w / jnp.where(nrm > 0, nrm, 1), 0))
                return V, Hm
            return jax.lax.fori_loop(j0, j1, step, (V, Hm))

        def combine(V, coef):           # Σ_j c_j v_j: the approximation from its coefficients
            return coef @ V[:m_max].astype(jnp.complex128)

        def grown(V, Hm):               # room for 2·m_max vectors: zeros appended
            return (jnp.pad(V, ((0, m_max), (0, 0))), jnp.pad(Hm, ((0, m_max), (0, m_max))))
        return jax.jit(start), jax.jit(extend), jax.jit(combine), jax.jit(grown)

    def value(self, X):
        return self._call("value", X)

    def grad(self, X):
        return self._call("grad", X)

    def hess(self, X):
        return self._call("hess", X)

    def third(self, X, V):
        return self._call("third", X, V)

    def grad_hess(self, X):
        """(∇E, H) at the rows of X in one call (one dispatch: the PF for D > 2 asks for both)."""
        H, g = self._call("hess_grad", X)
        return g, H

    def hvp(self, x, v):
        """H(x)v for v [D], or H(x)v_i for the rows of v [m, D] (one linearisation, m padded to a power of two)."""
        v = np.asarray(v)
        if v.ndim == 1:
            return np.asarray(self._table(x)["hvp"](x, v))
        return self._padded(lambda V: self._table(x)["hvps"](x, V), v)

    def __reduce__(self):
        return JaxFunctions, (self.fn, self.dim, self.holomorphic)


def loss_from_jax(fn, dim, *, name="jax", holomorphic=True):
    """An :class:`flowcore.Loss` from a JAX function ``fn(theta) -> scalar`` of the flat parameters
    θ [dim]: E, ∇E, H = ∂²E and T[v, v] = ∇_θ(vᵀH(θ)v) by JAX autodiff, exact to rounding.

    Complex points (the principal flow) use holomorphic derivatives of the same function; a
    function with operations that have no holomorphic extension (see the module docstring) is
    refused there with an error naming them, and works at real points. ``holomorphic=False``
    refuses complex points outright."""
    if not callable(fn):
        raise TypeError(f"fn must be a JAX function of the flat parameter vector, got {type(fn).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer (the number of parameters), got {dim!r}")
    f = JaxFunctions(fn, dim, holomorphic)
    return Loss.from_callable(f.value, f.grad, f.hess, f.third, dim=int(dim), vectorized=True, name=name,
                              grad_hess=f.grad_hess)


def is_jax(loss):
    """Whether ``loss`` offers Hessian–vector products (``'hvp' in loss.provides``: made by
    :func:`loss_from_jax`), which the matrix-free models need."""
    return "hvp" in loss.provides


def _functions(loss):
    if not is_jax(loss):
        raise TypeError(f"{loss.name!r} is not a JAX loss (fc.Loss.from_jax / fc.nn.mlp): matrix-free products "
                        "need its autodiff")
    return loss.functions[0].__self__


def polynomial_flow(loss, lr, coef, name, np_coef=0.0):
    """The flow θ' = α(hH)g + c·T[g, g], α(z) = Σ_p coef[p] z^p (IGR, the third-order flow, BEA-n),
    of a JAX loss as a field evaluated by Hessian–vector products (:meth:`JaxFunctions.poly_field`):
    one forward-over-reverse pass per power of H instead of forming H (D² entries) at every
    evaluation. What ``fc.models.model(name).build`` returns for a JAX loss."""
    from flowcore.engine._field import Field
    f = _functions(loss).poly_field(float(lr), coef, float(np_coef))
    return Field.from_callable(f, dim=loss.dim, vectorized=True, name=name)


KRYLOV_MIN_DIM = 32     # a JAX loss above this dimension gets the matrix-free PF by default (benchmarks/bench_nn.py)


def matrix_free_by_default(loss):
    """Does the PF of ``loss`` run matrix-free unless told (a JAX loss above KRYLOV_MIN_DIM)?"""
    return is_jax(loss) and loss.dim > KRYLOV_MIN_DIM


def matrix_free_pf(loss, lr, np_coef=0.0, track=True, tol=1e-11, name="pf"):
    """The PF of a JAX loss from Hessian–vector products (:mod:`flowcore.engine.krylov`): φ(hH)g by Arnoldi,
    H never formed; ``field.impl.stats`` counts its products and Krylov dimensions."""
    from flowcore.engine.krylov import krylov_pf
    return krylov_pf(_functions(loss), loss.dim, float(lr), float(np_coef), tol, track, name + " (Krylov)")


def hvp(loss, theta, v):
    """H(θ)v without forming H (one forward-over-reverse pass), for a JAX loss; v [D] or rows [m, D]
    (H(θ)v_i for each row, one linearisation of ∇E at θ for all of them)."""
    f = _functions(loss)
    th = np.asarray(theta)
    return f.hvp(th, np.asarray(v, dtype=th.dtype))


def top_eigenpairs(loss, theta, k=1, tol=1e-12):
    """The k largest (algebraic) eigenvalues of H(θ), descending, and their eigenvectors [D, k], by
    Lanczos (scipy ``eigsh``) on Hessian–vector products: H is never formed."""
    from scipy.sparse.linalg import LinearOperator, eigsh
    f = _functions(loss)
    th = np.asarray(theta, float)
    D = th.shape[-1]
    if th.ndim != 1 or not np.all(np.isfinite(th)):
        raise ValueError(f"theta must be one finite point [D]; got shape {th.shape}"
                         + ("" if th.ndim != 1 else " with non-finite entries (a diverged run?)"))
    if not 1 <= k < D:
        raise ValueError(f"k must be in [1, {D - 1}] (D = {D}; use np.linalg.eigh(loss.hess(θ)) for all), got {k}")
    op = LinearOperator((D, D), matvec=lambda v: f.hvp(th, np.asarray(v, float).reshape(-1)), dtype=float)
    lam, U = eigsh(op, k=k, which="LA", tol=tol)
    order = np.argsort(lam)[::-1]
    return lam[order], U[:, order]


# ----------------------------------------------------------------------------- networks
def _softplus(z):
    import jax.numpy as jnp
    return jnp.log1p(jnp.exp(z))


def _gelu_tanh(z):
    import jax.numpy as jnp
    return 0.5 * z * (1 + jnp.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))


def _activation(name):
    import jax.numpy as jnp
    table = {"tanh": jnp.tanh, "sin": jnp.sin, "softplus": _softplus, "gelu_tanh": _gelu_tanh,
             "linear": lambda z: z, "relu": lambda z: jnp.maximum(z, 0)}
    if name not in table:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return table[name]


ACTIVATIONS = ("tanh", "sin", "softplus", "gelu_tanh", "linear", "relu")
MAX_PARAMETERS = 50_000_000      # an MLP's parameter vector: 400 MB


def _bilinear(op, a, b):
    """op(a, b) for a bilinear op (a matrix product, a convolution); at complex arguments from three
    real ones (Gauss: (ar + i ai)(br + i bi) = rr − ii + i((ar + ai)(br + bi) − rr − ii)), which XLA
    runs through its real kernels: a complex matmul on the CPU took 11× a real one, these 3×. Exact
    for forward and reverse derivatives, holomorphic ones included."""
    import jax
    import jax.numpy as jnp
    if not (jnp.iscomplexobj(a) or jnp.iscomplexobj(b)):
        return op(a, b)
    ar, ai, br, bi = jnp.real(a), jnp.imag(a), jnp.real(b), jnp.imag(b)
    rr, ii = op(ar, br), op(ai, bi)
    return jax.lax.complex(rr - ii, op(ar + ai, br + bi) - rr - ii)


def _matmul(a, b):
    return a @ b


def _conv(x, W):
    """The 3×3 'SAME' convolution of x [n, s, s, c] with W [3, 3, c, c'] (HWIO) as one matrix product
    of the image patches (im2col): XLA's CPU convolution made a Hessian–vector product of the
    digits CNN take 4.7 s (real) and 12 s (complex), where its gradient took 0.4 s — its transposed
    forms are slow —, and a matrix product's derivatives are matrix products."""
    import jax.numpy as jnp
    n, s, _, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate([xp[:, i:i + s, j:j + s, :] for i in range(3) for j in range(3)], axis=-1)
    return patches @ W.reshape(9 * c, W.shape[-1])


class _Objective:
    """E(θ) of a network on its data, the mean of ℓ over the examples: a module-level callable (the
    loss pickles, for Dask); subclasses define ``forward``."""

    def examples(self, theta, X, Y):
        """ℓ(θ; x_i, y_i) for the rows of X, Y: E is their mean."""
        import jax.numpy as jnp
        z = self.forward(theta, X)
        if self.loss == "mse":
            return 0.5 * jnp.sum((z - Y) ** 2, axis=1)
        return jnp.log(jnp.sum(jnp.exp(z), axis=1)) - jnp.sum(Y * z, axis=1)

    def __call__(self, theta):
        import jax.numpy as jnp
        return jnp.mean(self.examples(theta, self.X, self.Y))


class _CNNObjective(_Objective):
    """E(θ) of a small CNN on square single-channel images (rows of X): 3×3 convolutions with
    ``channels[k]`` filters ('SAME' zero padding), each followed by the activation and a 2×2 average
    pooling (linear: the network stays holomorphic, where max pooling would not), then dense layers
    ``dense`` and the output layer. θ: each layer's weights (HWIO for a convolution) then biases."""

    def __init__(self, side, channels, dense, activation, loss, X, Y):
        self.side, self.channels, self.dense = side, tuple(channels), tuple(dense)
        self.activation, self.loss, self.X, self.Y = activation, loss, X, Y
        self._sigma = _activation(activation)
        cin, s = 1, side
        self.blocks = []                     # (kind, weight shape, bias size)
        for c in self.channels:
            self.blocks.append(("conv", (3, 3, cin, c), c))
            cin, s = c, s // 2
        fan = s * s * cin
        for w in self.dense + (Y.shape[1],):
            self.blocks.append(("dense", (fan, w), w))
            fan = w

    def forward(self, theta, x):
        i, h = 0, x.reshape(-1, self.side, self.side, 1)
        for j, (kind, shape, nb) in enumerate(self.blocks):
            size = int(np.prod(shape))
            W, b = theta[i:i + size].reshape(shape), theta[i + size:i + size + nb]
            i += size + nb
            if kind == "conv":
                h = self._sigma(_bilinear(_conv, h, W) + b)
                n, s, _, c = h.shape
                h = h.reshape(n, s // 2, 2, s // 2, 2, c).mean(axis=(2, 4))
            else:
                h = _bilinear(_matmul, h.reshape(h.shape[0], -1), W) + b
                if j < len(self.blocks) - 1:
                    h = self._sigma(h)
        return h

    def initial(self, rng):
        """W ~ N(0, 1/fan_in) (fan_in = 9·c_in for a convolution), b = 0."""
        parts = []
        for kind, shape, nb in self.blocks:
            fan = int(np.prod(shape[:-1]))
            parts += [rng.normal(0, 1 / np.sqrt(fan), int(np.prod(shape))), np.zeros(nb)]
        return np.concatenate(parts)

    def __reduce__(self):
        return _CNNObjective, (self.side, self.channels, self.dense, self.activation, self.loss, self.X, self.Y)


class _MLPObjective(_Objective):
    """E(θ) of an MLP on its data."""

    def __init__(self, shapes, activation, loss, X, Y):
        self.shapes, self.activation, self.loss, self.X, self.Y = shapes, activation, loss, X, Y
        self._sigma = _activation(activation)

    def forward(self, theta, x):
        i, h = 0, x
        for j, (a, b) in enumerate(self.shapes):
            W, c = theta[i:i + a * b].reshape(a, b), theta[i + a * b:i + a * b + b]
            i += a * b + b
            h = _bilinear(_matmul, h, W) + c
            if j < len(self.shapes) - 1:
                h = self._sigma(h)
        return h

    def __reduce__(self):
        return _MLPObjective, (self.shapes, self.activation, self.loss, self.X, self.Y)


@dataclass
class Network:
    """A network as a flowcore loss: ``loss`` (an fc.Loss of the flat parameters), ``theta0`` (its
    seeded initialisation), ``arch`` (what it is, e.g. 'MLP 4→10→3') and, for an MLP, the layer
    ``shapes`` [(fan_in, fan_out), ...]."""
    loss: Loss
    theta0: np.ndarray
    shapes: list
    activation: str
    objective: str
    n_samples: int
    _forward: object = field(repr=False, default=None)
    _objective: object = field(repr=False, default=None)
    arch: str = ""

    @property
    def dim(self):
        return self.loss.dim

    def unflatten(self, theta):
        """[(W [fan_in, fan_out], b [fan_out]), ...] from θ."""
        theta, out, i = np.asarray(theta), [], 0
        for a, b in self.shapes:
            out.append((theta[i:i + a * b].reshape(a, b), theta[i + a * b:i + a * b + b]))
            i += a * b + b
        return out

    def predict(self, theta, X):
        """The network's outputs at inputs X [n, fan_in] (logits for cross-entropy)."""
        return np.asarray(self._forward(np.asarray(theta), np.asarray(X, float)))

    @property
    def full_batch_loss(self):
        """E, for the full-batch methods (the loss-backend contract: see flowcore.solvers)."""
        return self.loss

    def sgd_examples(self):
        """The per-example objective (``.examples(θ, X, Y)``, ``.X``, ``.Y``) that SGD runs in JAX."""
        return self._objective

    @property
    def n(self):
        return self.n_samples

    def grads(self, theta):
        """Per-example gradients ∇ℓ(θ; x_i, y_i): [n, D] for one θ [D] (JAX, vmap)."""
        jax = _jax()
        ob = self._objective
        g = jax.vmap(jax.grad(lambda th, x, y: ob.examples(th, x[None], y[None])[0]), in_axes=(None, 0, 0))
        return np.asarray(g(np.asarray(theta, float), ob.X, ob.Y))

    def covariance(self, theta):
        """The gradient-noise covariance Σ(θ) = (1/n) Σ_i (∇ℓ_i − ∇E)(∇ℓ_i − ∇E)ᵀ [D, D]."""
        dev = self.grads(theta)
        dev = dev - dev.mean(axis=0)
        return dev.T @ dev / self.n_samples

    def __repr__(self):
        return f"Network({self.arch}, {self.activation}, {self.objective} on {self.n_samples} samples, D = {self.dim})"


def mlp(X, Y, widths=(10,), activation="tanh", loss="mse", seed=0, name=None):
    """An MLP x → W_L σ(… σ(W_1 x + b_1) …) + b_L on the data (X [n, d_in], Y [n, d_out]) as a
    flowcore loss of its flat parameters (layer by layer, W row-major then b):

    - ``loss="mse"``: E = (1/2n) Σ_i ‖f(x_i) − y_i‖²;
    - ``loss="cross_entropy"``: E = (1/n) Σ_i [log Σ_c exp f_c(x_i) − Σ_c y_ic f_c(x_i)] with
      one-hot (or probability) rows y_i, or Y [n] of integer class labels 0 … k−1 (made
      one-hot); the log-sum-exp is not max-shifted, so that it is holomorphic (logits beyond
      ~700 overflow; GD has escaped long before).

    ``widths``: the hidden layers' sizes (an int for one layer). ``activation``: tanh, sin,
    softplus, gelu_tanh, linear (holomorphic: every model, the PF included) or relu (real models
    only). Initialisation: W ~ N(0, 1/fan_in), b = 0, from ``np.random.default_rng(seed)``."""
    jax = _jax()
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    if X.ndim != 2 or Y.ndim not in (1, 2) or len(X) != len(Y) or len(X) == 0:
        raise ValueError(f"X must be [n, d_in] and Y [n, d_out] (or [n]) with the same n >= 1, got {X.shape} and "
                         f"{Y.shape}")
    if loss not in ("mse", "cross_entropy"):
        raise ValueError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise ValueError("X and Y must be finite (a NaN or inf in the data makes every loss value NaN)")
    Y = _class_targets(Y) if loss == "cross_entropy" else Y.reshape(len(Y), -1)
    if isinstance(widths, (int, np.integer)) and not isinstance(widths, bool):
        widths = (widths,)
    elif not isinstance(widths, (list, tuple, np.ndarray)):
        raise TypeError(f"widths must be a positive integer or a sequence of them (the hidden layers' sizes), "
                        f"got {widths!r}")
    widths = tuple(widths)
    if not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise ValueError(f"widths must be positive integers (the hidden layers' sizes), got {widths}")
    _activation(activation)
    sizes = (X.shape[1],) + widths + (Y.shape[1],)
    shapes = list(zip(sizes[:-1], sizes[1:]))
    D = sum(a * b + b for a, b in shapes)
    if D > MAX_PARAMETERS:
        raise ValueError(f"an MLP {'→'.join(map(str, sizes))} has {D:,} parameters (at most {MAX_PARAMETERS:,}: "
                         f"θ alone would take {8 * D / 2**30:.3g} GiB); choose smaller widths")
    objective = _MLPObjective(shapes, activation, loss, X, Y)
    rng = np.random.default_rng(seed)
    theta0 = np.concatenate([np.concatenate([rng.normal(0, 1 / np.sqrt(a), a * b), np.zeros(b)]) for a, b in shapes])
    arch = "-".join(str(s) for s in sizes)
    lo = loss_from_jax(objective, len(theta0), name=name or f"mlp[{arch}, {activation}, {loss}]")
    return Network(lo, theta0, shapes, activation, loss, len(X), jax.jit(objective.forward), objective,
                   "MLP " + "→".join(map(str, sizes)))


def cnn(X, Y, channels=(32, 64), dense=(256,), activation="tanh", loss="cross_entropy", seed=0, name=None):
    """A small convolutional network on square single-channel images — the rows of X [n, s²] (e.g.
    8×8 digits, ``fc.nn.digits()``) — as a flowcore loss of its flat parameters: per entry of
    ``channels`` a 3×3 convolution, the activation and a 2×2 average pooling; then the ``dense``
    hidden layers and the output layer. The defaults on digits have 87 178 parameters. Average
    pooling and holomorphic activations keep E holomorphic, so every model applies, the PF included
    (matrix-free beyond a few dozen parameters). Losses, targets and initialisation as :func:`mlp`."""
    jax = _jax()
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    side = int(round(np.sqrt(X.shape[1]))) if X.ndim == 2 else 0
    if X.ndim != 2 or side * side != X.shape[1] or len(X) != len(Y) or len(X) == 0:
        raise ValueError(f"X must be [n, s²] (square images, one row each) and Y [n, ...] with the same n, got "
                         f"{X.shape} and {Y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise ValueError("X and Y must be finite (a NaN or inf in the data makes every loss value NaN)")
    if loss not in ("mse", "cross_entropy"):
        raise ValueError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")
    Y = _class_targets(Y) if loss == "cross_entropy" else Y.reshape(len(Y), -1)
    channels, dense = tuple(channels), tuple(dense)
    if not all(isinstance(c, (int, np.integer)) and c >= 1 for c in channels + dense) or not channels:
        raise ValueError(f"channels (at least one) and dense must be positive integers, got {channels}, {dense}")
    if side >> len(channels) < 1 or side % (1 << len(channels)):
        raise ValueError(f"{len(channels)} poolings halve {side}×{side} images {len(channels)} times: give fewer "
                         "channels (one per convolution)")
    _activation(activation)
    objective = _CNNObjective(side, channels, dense, activation, loss, X, Y)
    theta0 = objective.initial(np.random.default_rng(seed))
    arch = f"CNN {side}×{side} → conv {'→'.join(map(str, channels))} → dense {'→'.join(map(str, dense + (Y.shape[1],)))}"
    lo = loss_from_jax(objective, len(theta0), name=name or f"cnn[{side}x{side}, {channels}, {dense}, {activation}]")
    return Network(lo, theta0, [], activation, loss, len(X), jax.jit(objective.forward), objective, arch)


def _class_targets(Y):
    """Cross-entropy targets: integer labels [n] → one-hot [n, k]; rows [n, k] must be
    probabilities (a softmax of one output is 1, whatever the data: k ≥ 2)."""
    if Y.ndim == 1:
        if np.any(Y != np.round(Y)) or Y.min() < 0:
            raise ValueError("for loss='cross_entropy', Y [n] must be integer class labels 0, 1, …, k−1; "
                             "for regression targets use loss='mse'")
        k = int(Y.max()) + 1
        if k < 2:
            raise ValueError("for loss='cross_entropy', Y must have at least two classes")
        return _one_hot(Y, k)
    if Y.shape[1] < 2 or np.any(Y < 0) or not np.allclose(Y.sum(axis=1), 1.0, rtol=0, atol=1e-9):
        raise ValueError(f"for loss='cross_entropy', Y [n, k] must hold one-hot or probability rows (k ≥ 2, "
                         f"entries ≥ 0, each row summing to 1), got shape {Y.shape}"
                         + ("" if Y.shape[1] < 2 else f" with row sums in [{Y.sum(1).min():.3g}, {Y.sum(1).max():.3g}]")
                         + "; class labels go as Y [n] of integers; for regression use loss='mse'")
    return Y


# ----------------------------------------------------------------------------- data
def _one_hot(y, k):
    return np.eye(k)[np.asarray(y, int)]


def iris():
    """Fisher's Iris (scikit-learn's bundled copy): X [150, 4] standardised, Y [150, 3] one-hot."""
    data = _bundled("iris.csv", header=1)
    X, y = data[:, :4], data[:, 4].astype(int)
    return (X - X.mean(0)) / X.std(0), _one_hot(y, 3)


def digits(n=None):
    """scikit-learn's bundled 8×8 digits: X [n, 64] in [0, 1], Y [n, 10] one-hot (the first n of 1797)."""
    data = _bundled("digits.csv.gz")
    X, y = data[:, :64], data[:, 64].astype(int)
    n = len(X) if n is None else int(n)
    return X[:n] / 16.0, _one_hot(y[:n], 10)


def regression_2d(n=20, seed=0):
    """2-D inputs with random targets (the paper's Fig 7 task): X, Y ~ N(0, 1), [n, 2] and [n, 1]."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), rng.normal(size=(n, 1))


def moons(n=200, noise=0.1, seed=0):
    """Two interleaved half-moons in 2-D (scikit-learn's generator, nothing downloaded): X [n, 2]
    standardised, y [n] in {0, 1}."""
    X, y = _sklearn().make_moons(n_samples=int(n), noise=noise, random_state=seed)
    return (X - X.mean(0)) / X.std(0), y.astype(int)


def _bundled(name, header=0):
    """A data file scikit-learn ships (sklearn/datasets/data/), read without importing scikit-learn
    (1.6 s of a CLI command's start; tests/test_nn.py checks it against sklearn's loaders)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the bundled data sets need scikit-learn: pip install 'flowcore[nn]'")
    return np.loadtxt(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name, delimiter=",",
                      skiprows=header)


def _sklearn():
    try:
        import sklearn.datasets
    except ImportError:
        raise ImportError("the bundled data sets need scikit-learn: pip install 'flowcore[nn]'") from None
    return sklearn.datasets


register_backend("jax", loss_from_jax)      # fc.Loss.from_jax
