"""Per-problem compiled kernels for the stochastic side: minibatch SGD (include/flowcore/sgd.h,
its batches from batches.h) and fixed-step SDE schemes (include/flowcore/sde.h, normals from
normal.h), with random numbers from random.h.

As for the deterministic kernels (``_kernels``), the problem — the per-example gradient, the
drift, the diffusion and the scheme's update — is written by sympy into C with everything inlined,
and the same text builds for the host (OpenMP) and for CUDA (NVRTC). The learning rates, step,
batch, seed and radii are run-time arguments.

SDE schemes (h = dt, ΔW_j = √h ξ_j, b^j the j-th column of G, L⁰ = f·∇ + ½ Σ_j b^jᵀ∇²b^j ·,
L^j = b^j·∇; Kloeden & Platen 1992, §14.1–14.2):

* Euler–Maruyama (weak order 1): θ⁺ = θ + f h + G ΔW
* simplified weak order-2 Taylor scheme:
  θ⁺ = θ + f h + G ΔW + ½ L⁰f h² + ½ Σ_j (L⁰b^j + L^j f) ΔW_j h
       + ½ Σ_{j,r} L^j b^r (ΔW_j ΔW_r + V_{jr}),
  V_{jj} = −h, V_{jr} = ±h with probability ½ for j < r, V_{rj} = −V_{jr}.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from flowcore.engine import _kernels as K

SCHEMES = ("euler_maruyama", "weak2")


@dataclass(frozen=True)
class NoiseProblem:
    """What a stochastic kernel computes, as data (its source's key)."""
    kind: str                 # 'sgd' or 'sde'
    dim: int
    example_grad: tuple = ()  # ∇ℓ(θ; ξ) in x_0.. and d_0.. ('sgd', and 'sde' with data noise)
    nparam: int = 0           # P, the length of a data row
    drift: tuple = ()         # 'sde': f in x_0..
    diffusion: tuple = ()     # 'sde': G row-major [D][M] in x_0.. (empty: data noise)
    noise_dim: int = 0        # M
    scheme: str = "euler_maruyama"
    constant_diffusion: bool = False   # G's nonzero entries are symbols G_q_j read from a->data

    def key(self):
        import sympy as sp
        return [self.kind, str(self.dim), str(self.nparam), str(self.noise_dim), self.scheme,
                str(self.constant_diffusion),
                *map(sp.srepr, self.example_grad), "|", *map(sp.srepr, self.drift), "|",
                *map(sp.srepr, self.diffusion)]


@functools.lru_cache(maxsize=1)
def ziggurat_tables():
    """(x [257], f [257]) of the 256-layer ziggurat for exp(−x²/2): r = x[1] solves the closure
    F_{i+1} = F_i + v/x_i, x_{i+1} = √(−2 log F_{i+1}) reaching F_256 = 1, with the common area
    v = r f(r) + ∫_r^∞ f; x[0] = v/f(r) is the base layer's width (tail included). mpmath, 40 digits."""
    import mpmath as mp
    with mp.workdps(40):
        f = lambda x: mp.e ** (-x * x / 2)       # noqa: E731

        def layers(r):
            v = r * f(r) + mp.sqrt(mp.pi / 2) * mp.erfc(r / mp.sqrt(2))
            X, F = [v / f(r), r], [mp.mpf(0), f(r)]
            for _ in range(1, 256):
                F.append(F[-1] + v / X[-1])
                if F[-1] >= 1:
                    break
                X.append(mp.sqrt(-2 * mp.log(F[-1])))
            return X, F

        def closure(r):
            X, F = layers(r)
            return F[-1] - 1 if len(F) == 257 else mp.mpf(257 - len(F))

        r = mp.findroot(closure, (mp.mpf("3.6"), mp.mpf("3.7")), solver="anderson")
        X, F = layers(r)
        X, F = X[:256] + [mp.mpf(0)], F[:256] + [mp.mpf(1)]
        return np.array([float(x) for x in X]), np.array([float(y) for y in F])


def _tables():
    x, f = ziggurat_tables()
    return [f"FC_CONST double fc_zig_{name}[257] = {{{', '.join(repr(float(v)) for v in arr)}}};"
            for name, arr in (("x", x), ("f", f))]


def _xs(D):
    import sympy as sp
    return sp.symbols(f"x_0:{D}")


def _example_grad_fn(p):
    from flowcore.engine._codegen import c_block
    body = K._loads(p.dim, lanes=False) + [f"const double d_{k} = row[{k}];" for k in range(p.nparam)]
    body += c_block([(f"g[{q}]", e) for q, e in enumerate(p.example_grad)], "double")
    return K._function("FC_FN void fc_example_grad(const double *x, const double *row, double *g)",
                       ["(void)row;"] + body)


def _prelude(p, what):
    return [f"/* flowcore {what} kernel, D = {p.dim} */", f"#define FC_D {p.dim}",
            f"#define FC_P {max(p.nparam, 1)}", "#define FC_COMPLEX 0", '#include "flowcore/kernel.h"']


def sgd_source(p: NoiseProblem) -> str:
    return "\n".join(_prelude(p, "SGD") + _example_grad_fn(p) + ['#include "flowcore/sgd.h"', ""])


def _scheme_update(p):
    """θ⁺ as sympy expressions of x_k, dt, dW_j and V_j_r (the scheme written out)."""
    import sympy as sp
    D, M = p.dim, p.noise_dim
    xs = _xs(D)
    dt = sp.Symbol("dt")
    dW = sp.symbols(f"dW_0:{M}")
    f = sp.Matrix(p.drift)
    G = sp.Matrix(D, M, list(p.diffusion))
    new = sp.Matrix(xs) + f * dt + G * sp.Matrix(dW)
    if p.scheme == "weak2":
        cols = [G[:, j] for j in range(M)]

        def L0(v):        # f·∇v + ½ Σ_l b^lᵀ ∇²v b^l, for a vector v
            out = v.jacobian(xs) * f
            for b in cols:
                out += sp.Matrix([(b.T * sp.hessian(vi, xs) * b)[0] / 2 for vi in v])
            return out

        def V(j, r):
            if j == r:
                return -dt
            return sp.Symbol(f"V_{j}_{r}") if j < r else -sp.Symbol(f"V_{r}_{j}")

        new += L0(f) * dt**2 / 2
        for j in range(M):
            new += (L0(cols[j]) + f.jacobian(xs) * cols[j]) * dW[j] * dt / 2
            for r in range(M):
                new += cols[r].jacobian(xs) * cols[j] * (dW[j] * dW[r] + V(j, r)) / 2
    return list(new)


def _sde_step_fn(p):
    import sympy as sp
    from flowcore.engine._codegen import c_block
    D, M = p.dim, p.noise_dim
    head = ("FC_FN void fc_sde_step(const double *x, double dt, fc_normals *z, fc_stream *signs, "
            "double *xnew, const fc_sde_args *a)")
    body = ["(void)signs; (void)a; (void)z;"] + K._loads(D, lanes=False)
    if p.diffusion or M == 0:       # a symbolic G (M ≥ 0): the scheme, written out
        if p.constant_diffusion:
            body += [f"const double {g} = a->data[{q * M + j}];" for q in range(D) for j in range(M)
                     for g in [f"G_{q}_{j}"] if sp.Symbol(g) in set(p.diffusion)]
        body += [f"const double dW_{j} = sqrt(dt) * fc_normal(z);" for j in range(M)]
        if p.scheme == "weak2":
            body += [f"const double V_{j}_{r} = (fc_bits(signs) >> 63) ? dt : -dt;"
                     for j in range(M) for r in range(j + 1, M)]
        body += c_block([(f"xnew[{q}]", e) for q, e in enumerate(_scheme_update(p))], "double")
    else:                            # data noise: c Σ_k (∇ℓ_k − ∇E) ξ_k in one pass over the data
        body += [f"double f[{D}], S[{D}], W[{D}], gk[{D}], sum_xi = 0.0;"]
        body += c_block([(f"f[{q}]", e) for q, e in enumerate(p.drift)], "double")
        body += [f"for (int q = 0; q < {D}; q++) S[q] = W[q] = 0.0;",
                 "for (fc_int64 k = 0; k < a->n; k++) {",
                 f"    fc_example_grad(x, a->data + k * {p.nparam}, gk);",
                 "    const double xi = fc_normal(z);",
                 "    sum_xi += xi;",
                 f"    for (int q = 0; q < {D}; q++) {{ S[q] += gk[q]; W[q] += gk[q] * xi; }}",
                 "}",
                 "const double c = a->scale * sqrt(dt);",
                 f"for (int q = 0; q < {D}; q++)",
                 "    xnew[q] = x[q] + f[q] * dt + c * (W[q] - S[q] / (double)a->n * sum_xi);"]
    return K._function(head, body)


def sde_source(p: NoiseProblem) -> str:
    """sde.h declares fc_sde_step and runs the loop; the generated step follows it."""
    lines = _prelude(p, f"SDE ({p.scheme})") + _tables() + ['#include "flowcore/normal.h"']
    if p.example_grad:
        lines += _example_grad_fn(p)
    return "\n".join(lines + ['#include "flowcore/sde.h"'] + _sde_step_fn(p) + [""])


_SGD_ARGS = [K.ctypes.c_void_p] * 5 + [K.ctypes.c_int64] + [K.ctypes.c_void_p] * 8 + [K.ctypes.c_int]
_SDE_ARGS = [K.ctypes.c_void_p] * 5 + [K.ctypes.c_int64] + [K.ctypes.c_void_p] * 6 + [K.ctypes.c_int]


def _check_size(p: NoiseProblem, max_ops=20000):
    """Refuse a kernel whose expressions would take minutes to generate (as Loss.from_expr does)."""
    import sympy as sp
    from flowcore.engine._codegen import _cached, check_size
    if not _cached(["noise", *p.key()]):
        ops = sum(sp.count_ops(e) for e in (*p.example_grad, *p.drift, *p.diffusion))
        check_size(ops * (p.noise_dim if p.scheme == "weak2" else 1), max_ops, f"the {p.kind} kernel")


@functools.lru_cache(maxsize=64)
def host_function(p: NoiseProblem):
    _check_size(p)
    if p.kind == "sgd":
        return K._host_function(["sgd-kernel", *p.key()], lambda: sgd_source(p), "fc_sgd_host", _SGD_ARGS)
    return K._host_function(["sde-kernel", *p.key()], lambda: sde_source(p), "fc_sde_host", _SDE_ARGS)


def gpu_function(p: NoiseProblem):
    src = sgd_source if p.kind == "sgd" else sde_source
    return K._gpu_function([f"{p.kind}-gpu", *p.key()], lambda: src(p), f"fc_{p.kind}_gpu")


def source(p: NoiseProblem) -> str:
    return sgd_source(p) if p.kind == "sgd" else sde_source(p)


def seed_and_ids(seed, ids, N):
    """(seed, Philox key as two int64 bit patterns, ids [N] int64). seed None: a fresh 128-bit
    one (returned, so the run can be replayed); ids None: 0 .. N−1."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy) % 2**128
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**128:
        raise ValueError(f"seed must be an integer in [0, 2**128) or None, got {seed!r}")
    seed = int(seed)
    key = np.array([seed & (2**64 - 1), seed >> 64], dtype=np.uint64).view(np.int64)
    if ids is None:
        ids = np.arange(N, dtype=np.int64)
    else:
        ids = np.asarray(ids)
        if ids.shape != (N,) or not np.issubdtype(ids.dtype, np.integer) or (ids.size and ids.min() < 0):
            raise ValueError(f"ids must be {N} non-negative integers (one trajectory id per start), "
                             f"got {np.asarray(ids).shape} {np.asarray(ids).dtype}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
    return seed, key, ids


def save_steps(steps, every):
    """The steps recorded: 0, every, 2·every, ... and the last."""
    return np.unique(np.r_[np.arange(0, steps + 1, every), steps]).astype(np.int64)


def pick_device(device, N):
    """'cpu' or 'gpu' for N trajectories (None: the GPU when usable and N is large)."""
    d = K.choose_device(device, N)
    return "gpu" if d != "cpu" and K.gpu_usable(d) else "cpu"


GPU_SCRATCH_BYTES = 1 << 30     # SGD without replacement: permutation scratch one GPU launch holds


def run(p: NoiseProblem, device, r, n, save, data, ids, *per_start, threads):
    """Run the kernel on N trajectories; (out [N, nsave, D], last [N, D], status, nsteps,
    interrupted). per_start: (lr, th0) for SGD, (x0,) for an SDE. SGD without replacement gets
    n indices of scratch per thread (host) or per trajectory (GPU, in launches of at most
    GPU_SCRATCH_BYTES of it) for its shuffles."""
    x0 = per_start[-1]
    N, D = x0.shape
    nsave = len(save)
    shuffles = p.kind == "sgd" and not n[3]          # n: sgd.h's FC_SG_* integers (REPLACE = 3)
    width = int(n[1]) if shuffles else 1             # the scratch row: n indices, or a dummy
    if device == "gpu":
        import cupy
        out, last = np.full((N, nsave, D), np.nan), np.empty((N, D))
        status, nsteps = np.zeros(N, np.int8), np.zeros(N, np.int64)
        rows = max(1, GPU_SCRATCH_BYTES // (4 * width)) if shuffles else max(N, 1)
        args = [cupy.asarray(r), cupy.asarray(n), cupy.asarray(save), cupy.asarray(data)]
        block = 128
        for i in range(0, N, rows):
            sl = slice(i, min(N, i + rows))
            m = sl.stop - sl.start
            o, l_, st, ns = (cupy.full((m, nsave, D), np.nan), cupy.empty((m, D)), cupy.zeros(m, dtype=cupy.int32),
                             cupy.zeros(m, dtype=cupy.int64))
            extra = [cupy.zeros((m if shuffles else 1, width), dtype=np.uint32)] if p.kind == "sgd" else []
            gpu_function(p)(((m + block - 1) // block,), (block,),
                            (*args, np.int64(m), cupy.asarray(ids[sl]), *(cupy.asarray(a[sl]) for a in per_start),
                             o, l_, st, ns, *extra))
            out[sl], last[sl], status[sl], nsteps[sl] = o.get(), l_.get(), st.get(), ns.get()
        return out, last, status, nsteps, False
    out = np.full((N, nsave, D), np.nan)
    last = np.empty((N, D))
    status = np.zeros(N, dtype=np.intc)
    nsteps = np.zeros(N, dtype=np.int64)
    ptr = lambda a: a.ctypes.data        # noqa: E731
    extra = [ptr(np.zeros((threads if shuffles else 1, width), dtype=np.uint32))] if p.kind == "sgd" else []
    interrupted = K._call_host(host_function(p), ptr(r), ptr(n), ptr(save), ptr(data), N, ptr(ids),
                               *map(ptr, per_start), ptr(out), ptr(last), ptr(status), ptr(nsteps), *extra,
                               threads)
    return out, last, status.astype(np.int8), nsteps, interrupted


_BATCHES_SOURCE = "/* flowcore SGD batches (for SGD outside the kernels) */\n#include \"flowcore/batches.h\"\n"


@functools.lru_cache(maxsize=1)
def _batches_functions():
    """fc_batches_size, fc_batches_start and fc_batches_host of batches.h (compiled once, cached)."""
    from flowcore.engine import _codegen
    lib = _codegen.build([K._headers_digest(), "sgd-batches"], lambda: _BATCHES_SOURCE, "the SGD batches",
                         extra=["-I", str(K.INCLUDE)])
    c = K.ctypes
    lib.fc_batches_size.argtypes, lib.fc_batches_size.restype = [], c.c_int64
    lib.fc_batches_start.argtypes = [c.c_void_p, c.c_int64, c.c_void_p, c.c_int64, c.c_int64, c.c_int, c.c_void_p]
    lib.fc_batches_host.argtypes = [c.c_int64, c.c_int64, c.c_int64, c.c_void_p, c.c_void_p, c.c_void_p]
    return lib


class Batches:
    """The examples of SGD's steps for runs ``ids`` — the very ones the compiled SGD kernel draws
    for (seed, run id) — for SGD that runs outside the kernels (networks, in JAX). Steps are read
    in order, a chunk at a time: ``next(k_end)`` returns [steps, N, B] for the next steps up to
    k_end."""

    def __init__(self, key, ids, n, batch, replace):
        self._lib = _batches_functions()
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.n, self.batch, self.k = int(n), int(batch), 0
        N = len(self.ids)
        self._state = np.zeros(N * self._lib.fc_batches_size(), dtype=np.uint8)
        self._perm = np.zeros((N, 1 if replace else self.n), dtype=np.uint32)
        key = np.ascontiguousarray(key, dtype=np.int64)
        self._lib.fc_batches_start(key.ctypes.data, N, self.ids.ctypes.data, self.n, self.batch, int(bool(replace)),
                                   self._state.ctypes.data)

    def next(self, k_end):
        N = len(self.ids)
        out = np.empty((N, k_end - self.k, self.batch), dtype=np.int64)
        self._lib.fc_batches_host(N, self.k, k_end, self._state.ctypes.data, self._perm.ctypes.data, out.ctypes.data)
        self.k = k_end
        return out.transpose(1, 0, 2)
