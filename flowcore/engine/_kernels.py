"""Per-problem compiled kernels: one source for the CPU and the GPU.

For a field whose every part is known symbolically (``Field.from_expr``, and the spectral flows
NGF/IGR/BEA/third-order/PF of a loss with a sympy expression — ``Loss.from_expr`` and the zoo),
this module writes one C source with everything inlined: the loss's derivatives from sympy
(CSE), the field (Horner for polynomial α, the closed-form 2×2 spectral calculus with branch
tracking for the PF), the method's stages unrolled from its tableau, and the integration loop
of ``include/flowcore/rk.h``. The host compiler builds it with OpenMP across trajectories;
NVRTC builds the very same text for CUDA (one thread per trajectory). The learning rate,
tolerances, step and radii are run-time arguments, so changing them never recompiles; the
source is cached on disk by the codegen cache, keyed by the source itself.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INCLUDE = Path(__file__).parent / "include"
HEADERS = ("target.h", "kernel.h", "spectral.h", "control.h", "rk.h", "maps.h", "random.h", "normal.h",
           "batches.h", "sgd.h", "sde.h")
REST_WINDOW = 8       # accepted steps the rest test must hold for


class NoKernel(Exception):
    """Why a field has no compiled kernel (it runs on the generic path instead)."""


# the Python that writes kernel sources: a change to it must not reuse a kernel it wrote before
GENERATORS = ("_kernels.py", "_stochastic.py", "_codegen.py")


@functools.lru_cache(maxsize=1)
def _headers_digest():
    """Digest of everything a kernel's source is made from besides its problem: the headers and
    the generators (so an edited generator recompiles instead of loading a stale cached kernel)."""
    h = hashlib.sha256()
    for name in HEADERS:
        h.update((INCLUDE / "flowcore" / name).read_bytes())
    for name in GENERATORS:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class Problem:
    """What a kernel computes, as data: the key of its source."""
    kind: str            # 'expr' (a field), 'poly' (α polynomial), 'pf' (principal flow)
    dim: int
    exprs: tuple         # the field's components ('expr') or (E,) for a loss
    vars: tuple
    coef: tuple = ()     # 'poly': α(z) = Σ coef[p] z^p
    nonprincipal: bool = False   # + np_coef T[g, g] (np_coef is a run-time argument)
    tracked: bool = False        # 'pf': branch state along the trajectory
    complex_: bool = False
    diagonal: bool = False       # 'pf': the Hessian is diagonal for every θ (a separable loss)

    def key(self):
        import sympy as sp
        return [self.kind, str(self.dim), *map(sp.srepr, self.exprs), *map(str, self.vars),
                repr(self.coef), str(self.nonprincipal), str(self.tracked), str(self.complex_),
                str(self.diagonal)]


def problem(field, complex_=False) -> Problem:
    """The Problem of a flowcore Field, or NoKernel saying why it has none."""
    from flowcore.engine._field import ExprField, SpectralFlow
    if isinstance(field, ExprField):
        return Problem("expr", field.dim, tuple(field.exprs), tuple(field.vars), complex_=complex_)
    if not isinstance(field, SpectralFlow):
        raise NoKernel(f"{type(field).__name__} is a Python callable; only fields known "
                       "symbolically are compiled")
    if field.kind == "user":
        raise NoKernel("fc.flows.spectral runs a Python α")
    expr, vars = field.loss.expr, field.loss.vars
    if expr is None:
        raise NoKernel(f"the loss {field.loss.name!r} has no symbolic expression (a Python "
                       "callable or a C library); use Loss.from_expr or the zoo")
    nonprincipal = field.np_coef != 0
    if field.kind == "pf":
        diagonal = hessian_is_diagonal(expr, tuple(vars))
        if field.dim > 2 and not diagonal:
            raise NoKernel("the PF with D > 2 and a non-diagonal Hessian needs LAPACK "
                           "eigendecompositions (host only)")
        return Problem("pf", field.dim, (expr,), tuple(vars), nonprincipal=nonprincipal,
                       tracked=field.nstate > 0, complex_=True, diagonal=diagonal)
    return Problem("poly", field.dim, (expr,), tuple(vars), tuple(field.coefficients.tolist()),
                   nonprincipal, complex_=complex_)


DIAGONAL_MAX_DIM = 64   # a larger loss is not searched for a diagonal Hessian (D² derivatives)


@functools.lru_cache(maxsize=64)
def hessian_is_diagonal(expr, vars) -> bool:
    """Is ∂²E/∂θ_j∂θ_k identically zero for j ≠ k (sympy's derivative is the exact 0)? Then the
    eigenvectors are the axes for every θ, and the PF acts coordinate-wise: f_k = φ(hH_kk) g_k,
    for any D. A zero sympy cannot see structurally leaves the general path (never wrong)."""
    import sympy as sp
    D = len(vars)
    if D == 1:
        return True
    if D > DIAGONAL_MAX_DIM:
        return False
    g = [sp.diff(expr, v) for v in vars]
    return all(sp.diff(g[j], vars[k]) == 0 for j in range(D) for k in range(j + 1, D))


# ----------------------------------------------------------------------- generation
def _scaled(c, e):
    """c·e with c inside e's top-level products (c·4x(x²−1) → (4c)x(x²−1), c·(a + b) → ca + cb):
    the compiler forms 4c once and the multiply by c leaves the latency chain of e."""
    import sympy as sp
    return sp.Add(*[c * t for t in e.args]) if isinstance(e, sp.Add) else c * e


def _loss_parts(p: Problem, want_H, want_T, diagonal_only=False, g_scale=None):
    """C statements for g[k], H[j*D+k] and (T[v,v] with v = g) of the loss at x_0, x_1, ...;
    with diagonal_only, Hd[k] = H_kk instead of H; with g_scale (a C variable's name),
    g[k] = g_scale·∂_k E (see _scaled)."""
    import sympy as sp
    from flowcore.engine._codegen import c_block, loss_derivatives
    D = p.dim
    xs = sp.symbols(f"x_0:{D}")
    E = p.exprs[0].xreplace(dict(zip(p.vars, xs)))
    _, g, H, T, v = loss_derivatives(E, xs)
    if g_scale is not None:
        c = sp.Symbol(g_scale, real=True)
        g = [_scaled(c, gk) for gk in g]
    out = [(f"g[{k}]", g[k]) for k in range(D)]
    if diagonal_only:
        out += [(f"Hd[{k}]", H[k][k]) for k in range(D)]
    elif want_H:
        out += [(f"H[{j * D + k}]", H[j][k]) for j in range(D) for k in range(D)]
    decl = f"fc_s g[{D}], Hd[{D}], T[{D}];" if diagonal_only else f"fc_s g[{D}], H[{D * D}], T[{D}];"
    lines = [decl, "(void)T;" if diagonal_only else "(void)H; (void)T;"] + c_block(out, "fc_s")
    if want_T:
        tl = [f"const fc_s v_{k} = g[{k}];" for k in range(D)]
        tl += c_block([(f"T[{k}]", T[k]) for k in range(D)], "fc_s")
        lines += ["{"] + ["    " + s for s in tl] + ["}"]
    return lines


def _loads(D, lanes=True):
    """x_k = x[k], from a lane-strided x (rk.h's fields) or a contiguous one."""
    return [f"const fc_s x_{k} = x[{k}{' * FC_W' if lanes else ''}];" for k in range(D)]


RHS = ("{fn} int fc_rhs(const fc_s *x, fc_s *f, const fc_branch *b, fc_branch *bnew, "
       "const fc_args *a)")
NO_BRANCH = ["typedef struct { char unused; } fc_branch;",
             "FC_FN int fc_branch_init(const fc_s *y, fc_branch *b, const fc_args *a)",
             "{ (void)y; (void)b; (void)a; return FC_OK; }"]


INLINE_LINES = 40     # a longer field is called, not inlined, on CUDA (NVRTC time: 2 s vs 100 s)


def _function(head, body):
    return [head, "{"] + ["    " + s for s in body] + ["}"]


def _lane_loops(body):
    """Loops over lanes, each written "LANES {" ... "}" with l the lane, as `omp simd` loops over
    all FC_W lanes of the block."""
    out = []
    for line in body:
        if "LANES {" in line:
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + "FC_SIMD", line.replace("LANES {", "for (int l = 0; l < FC_W; l++) {")]
        else:
            out.append(line)
    return out


def _rhs(body):
    return _function(RHS.format(fn="FC_FN" if len(body) <= INLINE_LINES else "FC_CALL"), body)


# _FINITE: the polynomial and expression fields do not test their values: rk.h tests what decides
# something — f(y0), the state after each step (in the escape test's one compare), and (adaptive)
# the error norm, which a non-finite stage makes NaN and so rejects the step. A check per stage
# lengthened a cheap field's step by ~3 % against the plain C loop.


def _expr_problem(p):
    import sympy as sp
    from flowcore.engine._codegen import c_block
    xs = sp.symbols(f"x_0:{p.dim}")
    fs = [e.xreplace(dict(zip(p.vars, xs))) for e in p.exprs]
    body = ["(void)b; (void)bnew; (void)a;"] + _loads(p.dim)
    body += c_block([(f"f[{k} * FC_W]", fs[k]) for k in range(p.dim)], "fc_s")
    body += ["return FC_OK;"]        # finiteness: see _FINITE
    return NO_BRANCH + _rhs(body)


UNROLL_TERMS = 256    # Hessian entries up to which H·r is written out term by term


def _hessian_pattern(p):
    """For each row j, the columns k whose H_jk is not identically zero (sympy)."""
    import sympy as sp
    g = [sp.diff(p.exprs[0], v) for v in p.vars]
    return [[k for k, v in enumerate(p.vars) if sp.diff(gj, v) != 0] for gj in g]


def _hessian_times(p, r, out, factor):
    """C lines for out[j] = Σ_k (factor·H[j*D+k]) r[k]. Written out over the structurally
    nonzero entries when there are few: a sum starting at 0.0 or with 0.0·r terms cannot be
    folded by the compiler (IEEE signed zeros and 0·∞) and lengthens the latency chain of every
    stage; and factor·H_jk, which needs x only, is formed beside the chain g → r → out instead of
    on it (the IGR field's chain: 28 cycles → 20, the plain C loop's). Else a loop (many terms:
    throughput, not latency, decides)."""
    D = p.dim
    rows = _hessian_pattern(p)
    if sum(map(len, rows)) > UNROLL_TERMS:
        return [f"for (int j = 0; j < {D}; j++) {{", "    fc_s acc = 0.0;",
                f"    for (int k = 0; k < {D}; k++) acc = acc + H[j * {D} + k] * {r}[k];",
                f"    {out}[j] = ({factor}) * acc;", "}"]
    return [f"{out}[{j}] = " + (" + ".join(f"(({factor}) * H[{j * D + k}]) * {r}[{k}]" for k in ks) or "0.0") + ";"
            for j, ks in enumerate(rows)]


def _poly_problem(p):
    """f = Σ_q coef[q] (hH)^q g by Horner, r ← coef[q] g + hH r, from r = g with coef[P−1]
    folded into the first product's factor."""
    D, P = p.dim, len(p.coef)
    c = ", ".join(repr(float(v)) for v in p.coef)
    body = ["(void)b; (void)bnew;"] + _loads(D) + _loss_parts(p, P > 1, p.nonprincipal)
    body += [f"const double coef[{P}] = {{{c}}};", f"fc_s r[{D}], s[{D}];", "(void)s;"]
    if P == 1:
        body += [f"for (int k = 0; k < {D}; k++) r[k] = coef[0] * g[k];"]
    for q in range(P - 2, -1, -1):
        src, factor = ("g", f"coef[{P - 1}] * a->lr") if q == P - 2 else ("r", "a->lr")
        body += _hessian_times(p, src, "s", factor)
        body += [f"for (int k = 0; k < {D}; k++) r[k] = coef[{q}] * g[k] + s[k];"]
    if p.nonprincipal:
        body += [f"for (int k = 0; k < {D}; k++) r[k] = r[k] + a->np_coef * T[k];"]
    body += [f"for (int k = 0; k < {D}; k++) f[k * FC_W] = r[k];", "return FC_OK;"]     # see _FINITE
    return NO_BRANCH + _rhs(body)


def _constant_diagonal(p):
    """For each k: is H_kk free of θ (sympy)?"""
    import sympy as sp
    return [not (sp.diff(p.exprs[0], v, 2).free_symbols & set(p.vars)) for v in p.vars]


def _pf_diagonal(p):
    """The PF of a loss with a diagonal Hessian, any D: the eigenvectors are the axes, so
    f_k = φ(hH_kk) g_k with each log(1 − hH_kk) continued along the path (tracked) or
    principal; SINGULAR where |1 − hH_kk| < tol. The general rules with no eigenvector to match.
    Written without branches or complex library calls (spectral.h's *_lane functions), and a
    second time over a block of lanes (fc_rhs_block, which rk.h's stages call): there the loss
    and the arguments of log1p and atan2, the calls alone, and the rest are three loops over the
    lanes — GCC vectorises a loop with a vector call only if nothing in it needs if-converting."""
    D = p.dim
    lines = [f"typedef struct {{ fc_z L[{D}]; }} fc_branch;", ""]
    loss = _loss_parts(p, True, p.nonprincipal, True)
    pf = ["const double h = a->lr;"] + _loads(D) + loss
    pf += ["int nonfinite = 0, singular = 0;", f"fc_z L[{D}];"]
    for k in range(D):
        pf += [f"const fc_z z_{k} = h * Hd[{k}];",
               f"nonfinite |= !fc_finite(g[{k}]) | !fc_finite(Hd[{k}]);",
               f"singular |= fc_lt(fc_abs2(1.0 - z_{k}), FC_SINGULAR_TOL * FC_SINGULAR_TOL);",
               f"L[{k}] = track ? fc_log1m_near_lane(z_{k}, bin->L[{k}]) : fc_log1m_lane(z_{k});"]
    pf += ["const int status = nonfinite ? FC_NONFINITE : singular ? FC_SINGULAR : FC_OK;",
           f"if (bout) for (int k = 0; k < {D}; k++) bout->L[k] = L[k];",
           "if (!f) return status;"]
    pf += [f"f[{k} * FC_W] = fc_phi_lane(z_{k}, L[{k}]) * g[{k}];" for k in range(D)]
    if p.nonprincipal:
        pf += [f"f[{k} * FC_W] = f[{k} * FC_W] + a->np_coef * T[{k}];" for k in range(D)]
    pf += ["const int checked = fc_check_lane(f);", "return status != FC_OK ? status : checked;"]
    lines += _pf_entry_points(p, pf)
    # the block: the same arithmetic lane by lane, in three loops over the lanes: the loss's
    # derivatives and the calls' arguments; the calls alone; the rest, in real arithmetic. Complex
    # values are read and written as pairs of doubles and kept in split arrays: GR, GI, HR, HI, TR,
    # TI: g, H_kk, T; ARG, N2, Y, X: the calls' arguments; LG, LN, AT: their values; LR, LI: the
    # logs kept for bnew.
    n = f"[{D} * FC_W]"
    der = [f"const fc_s x_{k} = fc_cmplx(xd[2 * ({k} * FC_W + l)], xd[2 * ({k} * FC_W + l) + 1]);"
           for k in range(D)] + loss
    for k in range(D):
        i = f"{k} * FC_W + l"
        der += [f"GR[{i}] = fc_re(g[{k}]); GI[{i}] = fc_im(g[{k}]); HR[{i}] = fc_re(Hd[{k}]); HI[{i}] = fc_im(Hd[{k}]);"]
        if p.nonprincipal:
            der += [f"TR[{i}] = fc_re(T[{k}]); TI[{i}] = fc_im(T[{k}]);"]
    blk = ["const double h = a->lr;", "const double *xd = (const double *)x;", "double *fd = (double *)f;",
           f"double GR{n}, GI{n}, HR{n}, HI{n}, TR{n}, TI{n}, LR{n}, LI{n};",
           f"double ARG{n}, N2{n}, Y{n}, X{n}, LG{n}, LN{n}, AT{n};", "(void)TR; (void)TI;"]
    loops = ["LANES {"] + ["    " + d_ for d_ in der]
    for k in range(D):
        i = f"{k} * FC_W + l"
        loops += [f"    const fc_z z_{k} = fc_cmplx(h * HR[{i}], h * HI[{i}]);",
                  f"    ARG[{i}] = fc_log1m_arg(z_{k}); N2[{i}] = fc_log1m_norm2(z_{k});",
                  f"    Y[{i}] = fc_arg_y(z_{k}); X[{i}] = fc_arg_x(z_{k});"]
    loops += ["}"]
    # a constant H_kk (a quadratic term: the double well's y²) has the same logs in every lane: once
    # a call, by glibc's scalar functions (those of W = 1), from lane 0's arguments
    const = _constant_diagonal(p)
    for k in (k for k in range(D) if const[k]):
        loops += [f"const double LG_{k} = log1p(ARG[{k} * FC_W]), LN_{k} = log(N2[{k} * FC_W]), "
                  f"AT_{k} = atan2(Y[{k} * FC_W], X[{k} * FC_W]);"]
    if not all(const):
        loops += ["LANES {"]
        for k in (k for k in range(D) if not const[k]):
            i = f"{k} * FC_W + l"
            loops += [f"    LG[{i}] = fc_vlog1p(ARG[{i}]);", f"    LN[{i}] = fc_vlog(N2[{i}]);",
                      f"    AT[{i}] = fc_vatan2(Y[{i}], X[{i}]);"]
        loops += ["}"]
    loops += ["LANES {", "    int nonfinite = 0, singular = 0, ok = 1;"]

    def logs(k, i):
        return f"LG_{k}, LN_{k}, AT_{k}" if const[k] else f"LG[{i}], LN[{i}], AT[{i}]"
    for k in range(D):
        i = f"{k} * FC_W + l"
        near = f"fc_near_lane(z_{k}, L_{k}p, b[l].L[{k}])" if p.tracked else f"L_{k}p"
        np_ = (f" + a->np_coef * TR[{i}]", f" + a->np_coef * TI[{i}]") if p.nonprincipal else ("", "")
        loops += [f"    const fc_z z_{k} = fc_cmplx(h * HR[{i}], h * HI[{i}]);",
                  f"    const fc_z L_{k}p = fc_log1m_parts(z_{k}, {logs(k, i)}), L_{k} = {near};",
                  f"    nonfinite |= !isfinite(GR[{i}]) | !isfinite(GI[{i}]) | !isfinite(HR[{i}]) | !isfinite(HI[{i}]);",
                  f"    singular |= fc_lt(fc_abs2(1.0 - z_{k}), FC_SINGULAR_TOL * FC_SINGULAR_TOL);",
                  f"    LR[{i}] = fc_re(L_{k}); LI[{i}] = fc_im(L_{k});",
                  f"    const fc_z p_{k} = fc_phi_lane(z_{k}, L_{k});      /* f = phi g, in real arithmetic */",
                  f"    const double fr_{k} = fc_re(p_{k}) * GR[{i}] - fc_im(p_{k}) * GI[{i}]{np_[0]};",
                  f"    const double fi_{k} = fc_re(p_{k}) * GI[{i}] + fc_im(p_{k}) * GR[{i}]{np_[1]};",
                  f"    fd[2 * ({i})] = fr_{k}; fd[2 * ({i}) + 1] = fi_{k};",
                  f"    ok &= (isfinite(fr_{k}) != 0) & (isfinite(fi_{k}) != 0);"]
    loops += ["    si[l] = nonfinite ? FC_NONFINITE : singular ? FC_SINGULAR : ok ? FC_OK : FC_NONFINITE;", "}"]
    blk += _lane_loops(loops) + [
            "if (bnew)",
            "    for (int l = 0; l < FC_W; l++)",
            f"        for (int k = 0; k < {D}; k++) bnew[l].L[k] = fc_cmplx(LR[k * FC_W + l], LI[k * FC_W + l]);"]
    lines += _function("FC_FN void fc_rhs_block(const fc_s *x, fc_s *f, const fc_branch *b, fc_branch *bnew, "
                       "const fc_args *a, int *si)", blk)
    return lines


def _pf_entry_points(p, pf_body):
    """fc_pf (the field with its branch state in and out), fc_rhs and fc_branch_init."""
    lines = _function("FC_CALL int fc_pf(const fc_s *x, fc_s *f, const fc_branch *bin, "
                      "fc_branch *bout, const fc_args *a, const int track)", pf_body)
    lines += _rhs([f"return fc_pf(x, f, b, bnew, a, {int(p.tracked)});"])
    lines += _function("FC_FN int fc_branch_init(const fc_s *y, fc_branch *b, const fc_args *a)",
                       ["return fc_pf(y, 0, 0, b, a, 0);"])
    return lines


def _pf_problem(p):
    """The PF for D ≤ 2 from spectral.h's closed forms; the same rules as _field.pyx's _pf_rows:
    eigenpairs matched to the previous ones by eigenvector overlap, each log continued from its
    previous value (tracked) or principal (branch='principal'), SINGULAR where |1 − hλ| < tol.
    A diagonal Hessian (always so for D = 1) takes the coordinate-wise form instead."""
    if p.diagonal:
        return _pf_diagonal(p)
    assert p.dim == 2
    lines = ["typedef struct { fc_z L[2], V[2][2]; } fc_branch;", ""]
    pf = ["const double h = a->lr;"] + _loads(2) + _loss_parts(p, True, p.nonprincipal)
    pf += ["if (fc_check(g, 2) != FC_OK || fc_check(H, 4) != FC_OK) return FC_NONFINITE;",
           "fc_z lam[2], V[2][2], L[2];", "int perm[2] = {0, 1};",
           "fc_eig2(H[0], H[1], H[3], &lam[0], &lam[1]);",
           "for (int k = 0; k < 2; k++) fc_eigvec2(H[0], H[1], H[3], lam[k], k, V[k]);",
           "if (track) {",
           "    const double keep = fc_overlap(bin->V[0], V[0]) + fc_overlap(bin->V[1], V[1]);",
           "    const double swap = fc_overlap(bin->V[0], V[1]) + fc_overlap(bin->V[1], V[0]);",
           "    if (!(keep >= swap)) { perm[0] = 1; perm[1] = 0; }",
           "    for (int j = 0; j < 2; j++) L[perm[j]] = fc_log1m_near(h * lam[perm[j]], bin->L[j]);",
           "} else {",
           "    for (int k = 0; k < 2; k++) L[k] = fc_log1m(h * lam[k]);",
           "}",
           "for (int k = 0; k < 2; k++)",
           "    if (fc_cabs(1.0 - h * lam[k]) < FC_SINGULAR_TOL) return FC_SINGULAR;",
           "if (bout) {",
           "    for (int j = 0; j < 2; j++) {",
           "        bout->L[j] = L[perm[j]];",
           "        for (int q = 0; q < 2; q++) bout->V[j][q] = V[perm[j]][q];",
           "    }",
           "}",
           "if (!f) return FC_OK;",
           # φ(hH) g = φ(z1) g + h φ[z1, z2] (H − λ1 I) g (divided differences)
           "const fc_z z1 = h * lam[0], z2 = h * lam[1];",
           "const fc_z p1 = fc_phi(z1, L[0]), p12 = h * fc_phi_divdiff(z1, L[0], z2, L[1]);",
           "for (int q = 0; q < 2; q++)",
           "    f[q * FC_W] = p1 * g[q] + p12 * (H[q * 2] * g[0] + H[q * 2 + 1] * g[1] - lam[0] * g[q]);"]
    if p.nonprincipal:
        pf += ["for (int k = 0; k < 2; k++) f[k * FC_W] = f[k * FC_W] + a->np_coef * T[k];"]
    pf += ["return fc_check_lane(f);"]
    lines += ["/* |u_prev^H u_new|: eigenvalues alone cannot tell a crossing from a bounce */",
              "FC_FN double fc_overlap(const fc_z *p, const fc_z *v)",
              "{ return fc_cabs(fc_conj(p[0]) * v[0] + fc_conj(p[1]) * v[1]); }", ""]
    return lines + _pf_entry_points(p, pf)


def _lit(v):
    return repr(float(v))


def _combo(weights, scale=None, lane=""):
    """'w0 * K[0][k] + w1 * K[1][k] + ...' over the nonzero weights (0.0 if none); with a scale
    s, '(s * w0) * K[0][k] + ...' (s alone for a weight of 1): the compiler hoists s·w out of the
    loop over k."""
    def weight(w):
        return _lit(w) if scale is None else scale if w == 1 else f"({scale} * {_lit(w)})"
    terms = [f"{weight(w)} * K[FC_KS({j}, k){lane}]" for j, w in enumerate(weights) if w != 0]
    return " + ".join(terms) if terms else "0.0"


def method_source(tab, dense, block_rhs=False):
    """The tableau's stages, error norm and continuous extension, unrolled into C (block_rhs: the
    problem evaluates a stage for the whole block, fc_rhs_block)."""
    A, b, e, e3, P = tab.floats()
    s = len(b)
    P = P if dense else None
    error_order = tab.error_order or 0
    order = tab.error_order or tab.order or 1
    alpha = 1.0 / (error_order + 1) - 0.75 * tab.beta if error_order > 0 else 0.0
    out = [f"#define FC_STAGES {s}", f"#define FC_ADAPTIVE {int(e is not None)}",
           f"#define FC_DENSE {int(P is not None)}", f"#define FC_ORDER {order}",
           f"#define FC_ALPHA {_lit(alpha)}", f"#define FC_BETA {_lit(tab.beta)}", ""]
    # The stages of a block of lanes, stage by stage: short loops over the lanes, which the compiler
    # vectorises without forced inlining (all stages in one loop per lane measured alike, and needed
    # every helper forced inline). Every stage is computed (a lane's fault
    # does not branch the lanes' common code); nfev counts a lane's stages up to its first fault,
    # st keeps that fault's status. The step's weights h·a_ij: a stage's input is y + Σ (h a_ij) K_j,
    # one multiply shorter on the latency chain than y + h Σ a_ij K_j (1.12× → 1.05× C on RK4).
    # A problem with fc_rhs_block (the diagonal PF) evaluates a stage over the whole block in one
    # call: its own loops over the lanes (see _pf_diagonal).
    body = ["LANES { st[l] = FC_OK; }"]
    for i in range(1, s + 1):
        last = i == s
        weights = b if last else A[i][:i]
        dest, keep = ("ynew", "bnew") if last else ("z", "0")     # the last stage keeps its branch state
        stage = f"    for (int k = 0; k < FC_D; k++) {dest}[FC_L(k) + l] = y[FC_L(k) + l] + ({_combo(weights, 'h', '+ l')});"
        count = ["    nfev[l] += st[l] == FC_OK;", "    st[l] = st[l] == FC_OK ? si : st[l];", "}"]
        if block_rhs:
            body += ["LANES {", "    const double h = hs[l];", stage, "}",
                     f"fc_rhs_block({dest}, K + FC_KS({i}, 0), b, {keep}, a, sis);",
                     "LANES {", "    const int si = sis[l];"] + count
        else:
            body += ["LANES {", "    const double h = hs[l];", stage,
                     f"    const int si = fc_rhs({dest} + l, K + FC_KS({i}, 0) + l, b + l, {keep}{' + l' if last else ''}, a);"] + count
    body = _lane_loops(body)
    if block_rhs:
        body = ["int sis[FC_W];"] + body
    out += _function("FC_FN void fc_attempt(const fc_s *y, fc_s *K, const double *hs, fc_s *ynew, fc_s *z, "
                     "const fc_branch *b, fc_branch *bnew, const fc_args *a, fc_int64 *nfev, int *st)", body)
    if e is not None:
        body = ["double e5 = 0, e3 = 0;", "(void)e3;", "FC_UNROLL", "for (int k = 0; k < FC_D; k++) {",
                "    const double sc = a->atol + a->rtol * fc_max(fc_abs_lane(y[FC_L(k)]), fc_abs_lane(ynew[FC_L(k)]));",
                f"    const double r5 = fc_abs_lane({_combo(e)}) / sc;", "    e5 += r5 * r5;"]
        if e3 is not None:
            body += [f"    const double r3 = fc_abs_lane({_combo(e3)}) / sc;", "    e3 += r3 * r3;"]
        body += ["}"]
        if e3 is not None:     # DOP853: |h| e5² / sqrt((e5² + e3²/100) D)
            body += ["return (e5 == 0 && e3 == 0) ? 0.0 : h * e5 / sqrt((e5 + 0.01 * e3) * FC_D);"]
        else:
            body += ["return h * sqrt(e5 / FC_D);"]
        out += _function("FC_INLINE double fc_error(const fc_s *y, const fc_s *ynew, const fc_s *K, "
                         "double h, const fc_args *a)", body)
    if P is not None:
        body, used = [], []
        for j in range(P.shape[0]):
            if np.any(P[j] != 0):
                horner = _lit(P[j, -1])
                for q in range(P.shape[1] - 2, -1, -1):
                    horner = f"({_lit(P[j, q])} + x * {horner})"
                body.append(f"const double w{j} = h * x * {horner};")
                used.append(j)
        acc = " + ".join(f"w{j} * K[FC_KS({j}, k)]" for j in used)
        body += [f"for (int k = 0; k < FC_D; k++) out[k] = y[FC_L(k)] + ({acc});"]
        out += _function("FC_FN void fc_dense(const fc_s *y, const fc_s *K, double x, double h, "
                         "fc_s *out)", body)
    return out


def solve_source(p: Problem, tab, dense) -> str:
    """The whole translation unit of one solve kernel (the same text for gcc and NVRTC)."""
    # no user string (a tableau's name) goes into the source, comments included
    lines = [f"/* flowcore solve kernel: {p.kind} flow, D = {p.dim}, {len(tab.b)}-stage tableau */",
             f"#define FC_D {p.dim}", f"#define FC_COMPLEX {int(p.complex_)}",
             '#include "flowcore/kernel.h"']
    if p.kind == "pf":
        lines += ['#include "flowcore/spectral.h"']
        lines += _pf_problem(p)
    elif p.kind == "poly":
        lines += _poly_problem(p)
    else:
        lines += _expr_problem(p)
    lines += [""] + method_source(tab, dense, p.kind == "pf" and p.diagonal) + ['#include "flowcore/rk.h"', ""]
    return "\n".join(lines)


def _method_key(tab, dense):
    A, b, e, e3, P = tab.floats()
    parts = [tab.name, str(tab.order), str(tab.error_order), repr(tab.beta), str(dense)]
    for arr in (A, b, e, e3, P if dense else None):
        parts.append("-" if arr is None else np.asarray(arr, dtype=np.float64).tobytes().hex())
    return parts


# ------------------------------------------------------------------------------ maps
MAP_METHODS = {"gd": "FC_GD", "heavy_ball": "FC_HEAVY_BALL", "nesterov": "FC_NESTEROV", "dal": "FC_DAL",
               "dal_momentum": "FC_DAL_MOMENTUM", "dal_per_param": "FC_DAL_PER_PARAM"}


def loss_problem(loss) -> Problem:
    """The Problem of a loss for the map kernels, or NoKernel saying why it has none."""
    if loss.expr is None:
        raise NoKernel(f"the loss {loss.name!r} has no symbolic expression (a Python callable or "
                       "a C library); use Loss.from_expr or the zoo")
    return Problem("loss", loss.dim, (loss.expr,), tuple(loss.vars))


def map_source(p: Problem, method, pmax) -> str:
    """The translation unit of one map's kernels, to rest and recorded (gcc and NVRTC). The
    iterates are read from lane blocks (coordinate k at x[k·FC_W], maps.h)."""
    dal = method.startswith("dal")     # DAL's rates come from ∇E and H; the others step by lr·∇E
    body = [f"const fc_s x_{k} = x[{k} * FC_W];" for k in range(p.dim)]
    body += _loss_parts(p, dal, False, g_scale=None if dal else "lr")
    body += ["(void)lr;", f"for (int k = 0; k < {p.dim}; k++) gout[k] = g[k];",
             f"if (Hout) for (int k = 0; k < {p.dim * p.dim}; k++) Hout[k] = H[k];"]
    lines = [f"/* flowcore map kernels: {method}, D = {p.dim}, periods <= {pmax} */",
             f"#define FC_D {p.dim}", "#define FC_COMPLEX 0", '#include "flowcore/kernel.h"',
             f"#define FC_PMAX {pmax}", f"#define FC_METHOD {MAP_METHODS[method]}"]
    lines += _function("FC_FN void fc_grad(const double *x, double lr, double *gout, double *Hout)", body)
    return "\n".join(lines + ['#include "flowcore/maps.h"', ""])


_REST_ARGS = [ctypes.c_void_p] * 4 + [ctypes.c_int64] + [ctypes.c_void_p] * 5 + [ctypes.c_int]


LANES_ENV = "FLOWCORE_LANES"   # the map kernels' lane width, FC_W (default: the target's, target.h)
LANE_WIDTHS = (1, 2, 4, 8, 16, 32)


def lane_width():
    """$FLOWCORE_LANES as an int (tests compare widths), or None: the target's width."""
    width = os.environ.get(LANES_ENV)
    if not width:
        return None
    if not width.isdigit() or int(width) not in LANE_WIDTHS:
        raise ValueError(f"${LANES_ENV} must be one of {', '.join(map(str, LANE_WIDTHS))} (the "
                         f"trajectories a thread advances together), got {width!r}; unset it for the "
                         "width of this machine's vectors")
    return int(width)


def host_rest(p: Problem, method, pmax):
    return _host_rest(p, method, pmax, lane_width())


@functools.lru_cache(maxsize=256)      # a sweep calls the same kernel per chunk: key it once
def _host_rest(p: Problem, method, pmax, width):
    return _host_function(["rest-kernel", *p.key(), method, str(pmax)], lambda: map_source(p, method, pmax),
                          "fc_rest_host", _REST_ARGS, native=True, width=width)


def host_record(p: Problem, method):
    """fc_record_host, from the library of the map's rest kernel with periods ≤ 1."""
    return _host_record(p, method, lane_width())


@functools.lru_cache(maxsize=256)
def _host_record(p: Problem, method, width):
    return _host_function(["rest-kernel", *p.key(), method, "1"], lambda: map_source(p, method, 1),
                          "fc_record_host", _REST_ARGS, native=True, width=width)


def pack_map_args(beta, power, cap, radius, tol, steps, confirm):
    return (np.array([beta, power, cap, radius, tol], dtype=np.float64),
            np.array([steps, confirm], dtype=np.int64))


def run_rest_host(fn, r, n, lr, th0, threads, out):
    """Run a host descend-to-rest kernel on th0 [N, D], writing (final [N, D], status, nsteps,
    period) into the contiguous arrays ``out`` (no copies); returns whether Ctrl-C arrived."""
    final, status, nsteps, period = out
    assert final.flags.c_contiguous and all(a.dtype == np.intc and a.flags.c_contiguous for a in out[1:])
    ptr = lambda arr: arr.ctypes.data        # noqa: E731
    return _call_host(fn, ptr(r), ptr(n), ptr(lr), len(th0), ptr(th0), ptr(final), ptr(status),
                      ptr(nsteps), ptr(period), threads)


def run_record_host(fn, r, n, lr, th0, nrate, threads):
    """Record a map from th0 [N, D]: (X [N, steps+1, D], NaN after a stop; rates [N, steps,
    nrate] or None when nrate = 0; status; nsteps; whether Ctrl-C arrived)."""
    N, D = th0.shape
    steps = int(n[0])
    X = np.empty((N, steps + 1, D))            # the kernel writes every entry (NaN after a stop)
    rates = np.empty((N, steps, nrate)) if nrate else None
    status, nsteps = np.zeros(N, np.intc), np.zeros(N, np.intc)
    ptr = lambda arr: arr.ctypes.data        # noqa: E731
    interrupted = _call_host(fn, ptr(r), ptr(n), ptr(lr), N, ptr(th0), ptr(X),
                             None if rates is None else ptr(rates), ptr(status), ptr(nsteps), threads)
    return X, rates, status, nsteps, interrupted


# ----------------------------------------------------------------------------- host
_HOST_ARGS = [ctypes.c_void_p] * 4 + [ctypes.c_int64] + [ctypes.c_void_p] * 6 + [ctypes.c_int]


def host_solver(p: Problem, tab, dense):
    """fc_solve_host of a problem and method. A real field and the PF of a loss with a diagonal
    Hessian run in lanes of $FLOWCORE_LANES or the target's width, built for this machine's
    vectors (the diagonal PF with libmvec's log, log1p and atan2 where found: its results then
    differ across widths in the last bits, docs/kernels.md); the coupled 2×2 PF and other complex
    states run one trajectory a thread (FC_W = 1) built for the generic target: their eigenvector
    matching and divided differences are branchy, and with -march=native GCC fuses complex
    products (vfmaddsub) despite -ffp-contract=off, which would make results depend on the machine."""
    lanes = (p.kind != "pf" and not p.complex_) or (p.kind == "pf" and p.diagonal)
    # complex lanes: no basic-block SLP. GCC 12 vectorises a complex product with vfmaddsub, a fused
    # multiply-add, despite -ffp-contract=off; in the loops over lanes every lane gets it alike, but
    # basic-block SLP fused the (re, im) pair of some lanes' code and not others' (measured: lanes
    # 24-31 of a block of identical starts differed from lane 0 in the last bits)
    flags = ["-fno-tree-slp-vectorize"] if lanes and p.complex_ else []
    method, width = tuple(_method_key(tab, dense)), lane_width() if lanes else 1
    key = (p, method, width)        # (a basin map solves chunk after chunk: the key's sympy
    if key not in _SOLVERS:         #  printing and the compiler lookup took ~0.8 ms a call)
        _SOLVERS[key] = _host_function(["solve-kernel", *p.key(), *method], lambda: solve_source(p, tab, dense),
                                       "fc_solve_host", _HOST_ARGS, native=lanes, width=width, flags=flags)
    return _SOLVERS[key]


_SOLVERS = {}       # (problem, method key, width) -> its host kernel, this process's


def _host_function(key_parts, make_source, name, argtypes, native=False, width=None, flags=()):
    """A host entry point of a kernel, compiled once (OpenMP when available) and cached on disk
    by the codegen cache; the key includes the headers' digest. native: built for this machine's
    vectors (the key names the machine); width: FC_W (None: the target's, target.h)."""
    from flowcore.engine import _codegen
    extra = ["-I", str(INCLUDE), *_codegen.openmp_flags(), *flags] + ([] if width is None else [f"-DFC_W={width}"])
    libs = []
    if native:
        defines, libs = _codegen.mvec_flags()
        extra += _codegen.native_flags() + defines
        key_parts = [*key_parts, _codegen.native_target()]
    lib = _codegen.build([_headers_digest(), *key_parts], make_source, f"the kernel {name}", extra=extra,
                         libs=libs)
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = argtypes, ctypes.c_int
    return fn


def _call_host(fn, *args):
    """Call a host kernel with Ctrl-C routed to its flag (passed as the argument after the
    first three); returns whether Ctrl-C arrived."""
    from flowcore.engine import _solve
    taken = _solve._take_sigint()
    try:
        rc = fn(*args[:3], _solve._sigint_flag_address(), *args[3:])
    finally:
        interrupted = _solve._give_sigint(taken)
    if rc != 0:
        raise MemoryError("a compiled kernel could not allocate its working memory (its threads' lane "
                          "blocks); free memory or run fewer threads (Compute(threads=))")
    return interrupted


def pack_args(lr, np_coef, t0, dt, rtol, atol, radius, rest_tol, max_steps, nout, rest_window):
    r = np.array([lr, np_coef, t0, dt, rtol, atol, radius, rest_tol], dtype=np.float64)
    n = np.array([max_steps, nout, rest_window], dtype=np.int64)
    return r, n


def run_host(fn, r, n, targets, y0, threads):
    """Run a host solve kernel on rows y0 [N, D]; (Y [N, nout, D], status, nfev, nsteps,
    nreject, interrupted)."""
    N, D = y0.shape
    nout = len(targets)
    Y = np.full((N, nout, D), complex(np.nan, np.nan) if y0.dtype == np.complex128 else np.nan,
                dtype=y0.dtype)
    status = np.zeros(N, dtype=np.intc)
    counters = [np.zeros(N, dtype=np.int64) for _ in range(3)]
    ptr = lambda arr: arr.ctypes.data        # noqa: E731
    interrupted = _call_host(fn, ptr(r), ptr(n), ptr(targets), N, ptr(y0), ptr(Y), ptr(status),
                             *map(ptr, counters), threads)
    return (Y, status, *counters, interrupted)


# ------------------------------------------------------------------------------ GPU
@functools.lru_cache(maxsize=None)
def cccl_include():
    """A directory holding libcu++'s <cuda/std/complex> for NVRTC (the nvidia-cuda-cccl wheel,
    or the copy CuPy ships), or None."""
    import importlib.util
    roots = []
    for pkg in ("nvidia", "cupy"):
        spec = importlib.util.find_spec(pkg)
        if spec is not None:
            roots += [Path(p) for p in (spec.submodule_search_locations or [])]
    for root in roots:
        for hit in sorted(root.glob("**/cuda/std/complex")):
            return hit.parent.parent.parent
    return None


def cuda_source(source):
    """The kernel source as given to NVRTC: the headers' digest is part of the text, so CuPy's
    kernel cache (keyed by the text) never serves a kernel built from older headers."""
    return f"/* flowcore headers {_headers_digest()} */\n{source}"


def cuda_options():
    opts = ["--std=c++17", f"-I{INCLUDE}"]
    cccl = cccl_include()
    if cccl is not None:
        opts.append(f"-I{cccl}")
    return opts


def nvrtc_compile(source, arch="sm_90"):
    """Compile a kernel source for CUDA with NVRTC (no GPU needed); returns the PTX text or
    raises RuntimeError with the compiler's log. Used by CI to keep every kernel CUDA-clean."""
    from cuda.bindings import nvrtc
    src = cuda_source(source).encode()
    err, prog = nvrtc.nvrtcCreateProgram(src, b"flowcore_kernel.cu", 0, [], [])
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"nvrtcCreateProgram failed: {err}")
    try:
        opts = [o.encode() for o in (*cuda_options(), f"--gpu-architecture={arch}")]
        err, = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise RuntimeError("NVRTC could not compile the kernel:\n" + log.decode(errors="replace")[-6000:])
        _, size = nvrtc.nvrtcGetPTXSize(prog)
        ptx = b" " * size
        nvrtc.nvrtcGetPTX(prog, ptx)
        return ptx.decode(errors="replace")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


_GPU = {}
GPU_MIN_STARTS = 10_000     # device=None: fewer starts stay on the CPU (a GPU compile costs seconds)
GPU_CHUNK = 1 << 20         # starts per GPU launch: enough threads to fill the device


def choose_device(device, n):
    """The device a run of n starts asks for: 'cpu', 'gpu', or None (decided by gpu_usable)."""
    if device not in (None, "cpu", "gpu"):
        raise ValueError(f"device must be 'cpu', 'gpu' or None, got {device!r}")
    return "cpu" if device is None and n < GPU_MIN_STARTS else device


def gpu_usable(device):
    """Can kernels run on a GPU? device='gpu' raises with the reason when not; None answers."""
    if device == "cpu":
        return False
    if "ok" not in _GPU:
        try:
            import cupy
            _GPU["ok"] = cupy.cuda.runtime.getDeviceCount() > 0
            _GPU["why"] = "no CUDA device is visible"
        except Exception as exc:       # not installed, no driver, no device
            _GPU["ok"], _GPU["why"] = False, f"{type(exc).__name__}: {exc}"
    if device == "gpu" and not _GPU["ok"]:
        from flowcore.engine._errors import DeviceUnavailable
        raise DeviceUnavailable(f"device='gpu' needs CuPy and an NVIDIA GPU (pip install 'flowcore[gpu]'); "
                           f"here: {_GPU['why']}. Use device='cpu' or None")
    return _GPU["ok"]


_MODULES: dict = {}


def _gpu_function(key_parts, make_source, name):
    """A kernel function of a CUDA module built by CuPy's NVRTC, memoised per key here (so sympy
    runs once per problem and process); CuPy caches the binary on disk by the source text."""
    import cupy
    key = hashlib.sha256("\0".join(key_parts).encode()).hexdigest()
    if key not in _MODULES:
        _MODULES[key] = cupy.RawModule(code=cuda_source(make_source()), options=tuple(cuda_options()))
    return _MODULES[key].get_function(name)


def gpu_solver(p: Problem, tab, dense):
    return _gpu_function(["solve", *p.key(), *_method_key(tab, dense)],
                         lambda: solve_source(p, tab, dense), "fc_solve_gpu")


def run_gpu(fn, r, n, targets, y0, threads, block=128):
    """Run a solve kernel on the GPU, one thread per trajectory; the same results as run_host."""
    import cupy
    N, D = y0.shape
    nan = complex(np.nan, np.nan) if y0.dtype == np.complex128 else np.nan
    Y = cupy.full((N, len(targets), D), nan, dtype=y0.dtype)
    status = cupy.zeros(N, dtype=cupy.int32)
    counters = [cupy.zeros(N, dtype=cupy.int64) for _ in range(3)]
    args = (cupy.asarray(r), cupy.asarray(n), cupy.asarray(targets), np.int64(N), cupy.asarray(y0),
            Y, status, *counters)
    fn(((N + block - 1) // block,), (block,), args)
    return (Y.get(), status.get().astype(np.intc), *(c.get() for c in counters), False)


def gpu_rest(p: Problem, method, pmax):
    return _gpu_function(["rest", *p.key(), method, str(pmax)], lambda: map_source(p, method, pmax),
                         "fc_rest_gpu")


def gpu_record(p: Problem, method):
    """fc_record_gpu, from the module of the map's rest kernel with periods ≤ 1."""
    return _gpu_function(["rest", *p.key(), method, "1"], lambda: map_source(p, method, 1), "fc_record_gpu")


GPU_RECORD_BYTES = 1 << 30   # iterates one recording launch keeps (the device holds them twice)


def run_record_gpu(fn, r, n, lr, th0, nrate, threads, block=128):
    """As run_record_host, one thread a start on the GPU, in launches of at most
    GPU_RECORD_BYTES of iterates: the kernel stores step-major (coalesced), and the transpose to
    trajectory-major runs on the GPU before each copy back."""
    import cupy
    N, D = th0.shape
    steps = int(n[0])
    X = np.empty((N, steps + 1, D))
    rates = np.empty((N, steps, nrate)) if nrate else None
    status, nsteps = np.empty(N, np.intc), np.empty(N, np.intc)
    rows = max(1, GPU_RECORD_BYTES // (8 * (steps + 1) * D))
    r, n = cupy.asarray(r), cupy.asarray(n)
    for i in range(0, N, rows):
        m = min(rows, N - i)
        x = cupy.full((steps + 1, m, D), np.nan)
        rt = cupy.full((steps, m, nrate), np.nan) if nrate else None
        st, ns = cupy.zeros(m, dtype=cupy.int32), cupy.zeros(m, dtype=cupy.int32)
        fn(((m + block - 1) // block,), (block,),
           (r, n, cupy.asarray(lr[i:i + m]), np.int64(m), cupy.asarray(th0[i:i + m]), x,
            np.uint64(0) if rt is None else rt, st, ns))
        X[i:i + m] = cupy.ascontiguousarray(x.transpose(1, 0, 2)).get()
        if rt is not None:
            rates[i:i + m] = cupy.ascontiguousarray(rt.transpose(1, 0, 2)).get()
        status[i:i + m], nsteps[i:i + m] = st.get(), ns.get()
    return X, rates, status, nsteps, False


def run_rest_gpu(fn, r, n, lr, th0, threads, out, block=128):
    """As run_rest_host, one thread a start on the GPU; the results are copied into ``out``."""
    import cupy
    N, D = th0.shape
    final = cupy.empty((N, D))
    status, nsteps, period = (cupy.zeros(N, dtype=cupy.int32) for _ in range(3))
    fn(((N + block - 1) // block,), (block,),
       (cupy.asarray(r), cupy.asarray(n), cupy.asarray(lr), np.int64(N), cupy.asarray(th0), final,
        status, nsteps, period))
    for dst, src in zip(out, (final, status, nsteps, period)):
        dst[...] = src.get()
    return False
