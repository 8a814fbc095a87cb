"""Losses that are means over data: E(θ) = (1/n) Σ_k ℓ(θ; ξ_k).

A :class:`DataLoss` holds the per-example loss ℓ as a sympy expression in the parameters θ and
the data symbols ξ, and the data [n, P]. From it come, exactly:

* the full-batch loss E as a :class:`flowcore.Loss` (so every flow, basin and critical point of
  the deterministic side applies): when ℓ is a polynomial in ξ, E is written with the data's
  empirical moments (its size does not grow with n); otherwise as the explicit sum;
* per-example gradients ∇ℓ(θ; ξ_k), minibatch gradients, and the gradient-noise covariance
  Σ(θ) = (1/n) Σ_k (∇ℓ_k − ∇E)(∇ℓ_k − ∇E)ᵀ;
* the compiled per-example gradient the SGD and SDE kernels inline (``fc.descend(...,
  method="sgd")``, :func:`flowcore.problems.sde.data_noise`).
"""
from __future__ import annotations

import numpy as np

from flowcore.engine._loss import ABI_VERSION, Loss
from flowcore.engine._stochastic import NoiseProblem

__all__ = ["DataLoss"]

MAX_EXPLICIT_TERMS = 2000      # a non-polynomial ℓ is summed term by term up to this many examples


class DataLoss:
    """E(θ) = (1/n) Σ_k ℓ(θ; ξ_k). Build with :meth:`from_expr` (or ``fc.losses.linear_regression``)."""

    def __init__(self, example, vars, data_vars, data, name=None):
        self.example = example            # ℓ(θ; ξ), sympy
        self.vars = tuple(vars)           # θ symbols
        self.data_vars = tuple(data_vars)  # ξ symbols
        self.data = data                  # [n, P] float64, read-only
        self.name = name or str(example)
        self._loss = None

    @staticmethod
    def from_expr(example, data, vars=None, name=None):
        """A data loss from the per-example loss ``example`` (text or sympy) and ``data``: a dict
        {data symbol name: values [n]} (every array the same length n).

        ``vars``: the parameter names in order; default the free symbols that are not data,
        sorted. Example: ``DataLoss.from_expr("(w*x - y)**2/2", {"x": xs, "y": ys})``."""
        from flowcore.engine.expressions import check_supported, parse   # (sympy: loaded on first use)
        import sympy as sp
        expr = parse(example, "example")
        check_supported(expr, "example")
        if not isinstance(data, dict) or not data:
            raise TypeError("data must be a dict {data symbol name: values [n]}, e.g. {'x': xs, 'y': ys}")
        names = list(data)
        cols = []
        for key in names:
            if not isinstance(key, str):
                raise TypeError(f"data keys must be symbol names (str), got {key!r}")
            col = np.asarray(data[key], dtype=np.float64)
            if col.ndim != 1:
                raise ValueError(f"data[{key!r}] must be one value per example (shape [n]), got shape {col.shape}")
            if not np.all(np.isfinite(col)):
                raise ValueError(f"data[{key!r}] has non-finite values")
            cols.append(col)
        n = {len(c) for c in cols}
        if len(n) != 1 or 0 in n:
            raise ValueError(f"every data array must have the same length n >= 1, got lengths "
                             f"{ {k: len(c) for k, c in zip(names, cols)} }")
        by_name = {s.name: s for s in expr.free_symbols}
        unused = [k for k in names if k not in by_name]
        if unused:
            raise ValueError(f"data names {unused} do not occur in the example loss {expr}; check the "
                             "spelling (data keys must be the symbols of the data in the expression)")
        params = sorted(set(by_name) - set(names))
        if vars is None:
            vars = params
        else:
            vars = [v if isinstance(v, str) else v.name for v in vars]
            extra = sorted(set(params) - set(vars))
            if extra:
                raise ValueError(f"the example loss has names {extra} that are neither parameters "
                                 f"(vars={list(vars)}) nor data ({names}); add them to one or the other")
            clash = sorted(set(vars) & set(names))
            if clash:
                raise ValueError(f"{clash} are given both as parameters (vars) and as data")
        if not vars:
            raise ValueError("the example loss has no parameters: every free symbol is data")
        vs = tuple(sp.Symbol(v) for v in vars)
        ds = tuple(sp.Symbol(k) for k in names)
        expr = expr.xreplace({by_name[s.name]: s for s in (*vs, *ds) if s.name in by_name})
        arr = np.ascontiguousarray(np.stack(cols, axis=1))
        arr.setflags(write=False)
        return DataLoss(expr, vs, ds, arr, name)

    # -------------------------------------------------------------------- shape
    @property
    def dim(self) -> int:
        return len(self.vars)

    @property
    def n(self) -> int:
        return self.data.shape[0]

    def __repr__(self):
        return (f"DataLoss(ℓ = {self.example}; θ = ({', '.join(map(str, self.vars))}), "
                f"n = {self.n} examples of ({', '.join(map(str, self.data_vars))}))")

    def _repr_latex_(self):
        import sympy as sp
        return (rf"$E(\theta) = \frac{{1}}{{{self.n}}}\sum_k \ell(\theta;\xi_k),\quad "
                rf"\ell = {sp.latex(self.example)}$")

    # ------------------------------------------------------------- the mean
    def _polynomial_in_data(self):
        return self.example.is_polynomial(*self.data_vars)

    def moment_mean(self, expr):
        """(1/n) Σ_k expr(θ; ξ_k) as a sympy expression in θ: by empirical moments when expr is a
        polynomial in the data, else term by term."""
        from flowcore.engine.expressions import exact_number   # (sympy: loaded on first use)
        import sympy as sp
        if expr.is_polynomial(*self.data_vars):
            poly = sp.Poly(sp.expand(expr), *self.data_vars)
            out = sp.Integer(0)
            for powers, coeff in poly.terms():
                m = float(np.mean(np.prod(self.data ** np.array(powers, dtype=float), axis=1)))
                out += coeff * exact_number(m)
            return out
        if self.n > MAX_EXPLICIT_TERMS:
            raise ValueError(f"ℓ is not a polynomial in the data and n = {self.n} > {MAX_EXPLICIT_TERMS}: "
                             "the mean would be a sum of n symbolic terms; subsample the data")
        return sp.Add(*[self.row_expr(expr, k) for k in range(self.n)]) / self.n

    def row_expr(self, expr, k):
        """expr with the data of example k substituted."""
        from flowcore.engine.expressions import exact_number   # (sympy: loaded on first use)
        return expr.xreplace({s: exact_number(float(v)) for s, v in zip(self.data_vars, self.data[k])})

    @property
    def mean_expr(self):
        """E(θ) as a sympy expression."""
        return self.moment_mean(self.example)

    @property
    def loss(self):
        """The full-batch loss E as a compiled :class:`flowcore.Loss` (built once): from the
        moments' closed form when ℓ is a polynomial in the data (with ``loss.expr``, so every
        compiled kernel and the symbolic analyses apply), else summed over the data in C (no
        ``expr``: flows run on the generic path)."""
        if self._loss is None:
            name = f"mean of {self.name}"
            if self._polynomial_in_data():
                self._loss = Loss.from_expr(self.mean_expr, vars=self.vars, name=name)
            else:
                from flowcore.engine._codegen import data_loss      # (sympy: loaded on first use)
                address, keep = data_loss(self.example, self.vars, self.data_vars, self.data, ABI_VERSION)
                self._loss = Loss._from_struct(address, name, keep)
        return self._loss

    def minibatch_expr(self, indices):
        """Ê_S(θ) = (1/|S|) Σ_{k ∈ S} ℓ(θ; ξ_k) for the examples S = indices (sympy)."""
        import sympy as sp
        idx = self._indices(indices)
        return sp.Add(*[self.row_expr(self.example, int(k)) for k in idx]) / len(idx)

    def _indices(self, indices):
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices must be a non-empty 1-D list of example numbers, got {indices!r}")
        if idx.min() < 0 or idx.max() >= self.n:
            raise ValueError(f"indices must lie in [0, {self.n}), got {idx.min()}..{idx.max()}")
        return idx

    # -------------------------------------------------------- per-example gradients
    @property
    def example_grad_exprs(self):
        """∇_θ ℓ(θ; ξ) as sympy expressions."""
        import sympy as sp
        return [sp.diff(self.example, v) for v in self.vars]

    def _grad_fn(self):
        if not hasattr(self, "_grad_numpy"):
            import sympy as sp
            f = sp.lambdify((*self.vars, *self.data_vars), self.example_grad_exprs, "numpy")
            self._grad_numpy = f
        return self._grad_numpy

    def _theta(self, theta):
        th = np.asarray(theta, dtype=np.float64)
        if th.shape[-1:] != (self.dim,):
            raise ValueError(f"theta must have shape [..., {self.dim}], got {th.shape}")
        return th

    def grads(self, theta):
        """Per-example gradients ∇ℓ(θ; ξ_k): [..., n, D] for theta [..., D]."""
        th = self._theta(theta)[..., None, :]
        cols = [th[..., i] for i in range(self.dim)] + [self.data[:, j] for j in range(self.data.shape[1])]
        out = self._grad_fn()(*cols)
        shape = np.broadcast_shapes(th.shape[:-1], (self.n,))
        return np.stack([np.broadcast_to(np.asarray(o, dtype=np.float64), shape) for o in out], axis=-1)

    def covariance(self, theta):
        """Σ(θ) = (1/n) Σ_k (∇ℓ_k − ∇E)(∇ℓ_k − ∇E)ᵀ: [..., D, D] (population covariance)."""
        G = self.grads(theta)
        dev = G - G.mean(axis=-2, keepdims=True)
        return np.einsum("...ki,...kj->...ij", dev, dev) / self.n

    def covariance_expr(self):
        """Σ(θ) as a sympy Matrix, from the data's moments: mean_k ∇ℓ_k∇ℓ_kᵀ − ∇E ∇Eᵀ."""
        import sympy as sp
        g = self.example_grad_exprs
        gE = [sp.diff(self.mean_expr, v) for v in self.vars]
        D = self.dim
        return sp.Matrix(D, D, lambda i, j: sp.expand(self.moment_mean(sp.expand(g[i] * g[j])) - gE[i] * gE[j]))

    @property
    def full_batch_loss(self):
        """E, for the full-batch methods (the loss-backend contract: see flowcore.solvers)."""
        return self.loss

    def sgd_kernel(self):
        """(the SGD kernel's problem, the data rows it reads): this loss provides compiled SGD."""
        return self._noise_problem("sgd"), self.data

    def _noise_problem(self, kind, **kw):
        import sympy as sp
        xs = sp.symbols(f"x_0:{self.dim}")
        ds = sp.symbols(f"d_0:{len(self.data_vars)}")
        sub = dict(zip(self.vars, xs)) | dict(zip(self.data_vars, ds))
        grads = tuple(e.xreplace(sub) for e in self.example_grad_exprs)
        return NoiseProblem(kind, self.dim, grads, len(self.data_vars), **kw)
