"""sympy -> C: parse and check expressions, generate batched kernels, compile and cache them.

Generated code has the signatures of csrc/flowcore_abi.h and is written once per
SCALAR (double, double complex); <tgmath.h> makes exp/log/... type-generic, so the
complex kernel is the holomorphic extension of the real one.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import tokenize
from pathlib import Path

import sympy as sp
from sympy.printing.c import C99CodePrinter

CODEGEN_VERSION = "2"
CFLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fcx-fortran-rules"]

# Functions analytic on their domain and available for complex arguments in C99.
HOLOMORPHIC = (sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh,
               sp.asin, sp.acos, sp.atan, sp.asinh, sp.acosh, sp.atanh)
NOT_HOLOMORPHIC = {
    sp.Abs: "abs", sp.conjugate: "conjugate", sp.re: "re", sp.im: "im", sp.sign: "sign",
    sp.floor: "floor", sp.ceiling: "ceiling", sp.Max: "Max", sp.Min: "Min",
    sp.Piecewise: "Piecewise", sp.Heaviside: "Heaviside", sp.arg: "arg",
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_CONSTANTS = {"pi": sp.pi}


class ExpressionError(ValueError):
    """An expression flowcore cannot compile (undefined names, non-holomorphic, non-scalar)."""


# --------------------------------------------------------------------------- parsing
def parse(expr, what="expression"):
    """A sympy expression from a string or sympy object.

    In strings, every identifier not followed by '(' is a symbol (so 'E', 'beta',
    'gamma' are variables, not sympy's constants), except 'pi'; '^' means power.
    """
    if isinstance(expr, str):
        from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations
        local = {}
        for m in _IDENT.finditer(expr):
            name = m.group()
            called = expr[m.end():].lstrip().startswith("(")
            if called:
                if name in ("abs", "max", "min"):
                    raise ExpressionError(
                        f"{what}: {name}() is not holomorphic; flowcore evaluates losses and fields "
                        "at complex points, so use analytic functions (e.g. a smooth surrogate)")
                if not callable(getattr(sp, name, None)):
                    raise ExpressionError(f"{what}: undefined function {name!r} in {expr!r}")
            elif name in _CONSTANTS:
                local[name] = _CONSTANTS[name]
            else:
                local[name] = sp.Symbol(name)
        try:
            expr = parse_expr(expr, local_dict=local,
                              transformations=standard_transformations + (convert_xor,))
        except (SyntaxError, TypeError, tokenize.TokenError) as exc:
            raise ExpressionError(f"{what}: cannot parse {expr!r}: {exc}") from None
    else:
        expr = sp.sympify(expr)
    return expr


def check_holomorphic(expr, what="expression"):
    """Raise ExpressionError naming the first non-holomorphic or unknown function."""
    for f in sp.preorder_traversal(expr):
        if isinstance(f, sp.core.function.AppliedUndef):
            raise ExpressionError(f"{what}: undefined function {f.func.__name__!r}")
        for cls, label in NOT_HOLOMORPHIC.items():
            if isinstance(f, cls):
                raise ExpressionError(
                    f"{what}: {label}(...) in {f} is not holomorphic; flowcore evaluates at "
                    "complex points (e.g. the principal flow), so use analytic functions only")
        if isinstance(f, sp.Function) and not isinstance(f, HOLOMORPHIC):
            raise ExpressionError(f"{what}: function {f.func.__name__} is not supported "
                                  f"(holomorphic functions: {', '.join(h.__name__ for h in HOLOMORPHIC)})")


def resolve_vars(exprs, vars, what="expression"):
    """Coordinate symbols in order, and the expressions rewritten onto plain Symbols."""
    free = set().union(*(e.free_symbols for e in exprs))
    by_name = {s.name: s for s in free}
    if vars is None:
        names = sorted(by_name)
        if not names:
            raise ExpressionError(f"{what}: no variables; pass vars=('x', ...) to set the dimension")
    else:
        names = [v if isinstance(v, str) else getattr(v, "name", None) for v in vars]
        if any(not isinstance(n, str) for n in names):
            raise TypeError(f"vars must be names or sympy Symbols, got {vars!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"vars has repeated names: {names}")
        undefined = sorted(set(by_name) - set(names))
        if undefined:
            raise ExpressionError(
                f"{what}: undefined name(s) {', '.join(map(repr, undefined))}; add them to vars= "
                "or substitute numbers (expr.subs(...)) before compiling")
    syms = tuple(sp.Symbol(n) for n in names)
    exprs = [e.xreplace({by_name[n]: s for n, s in zip(names, syms) if n in by_name}) for e in exprs]
    return syms, exprs


# ------------------------------------------------------------------------ C printing
class _Printer(C99CodePrinter):
    """C99 printer whose integer powers are products (no cpow for complex) and whose
    functions are the type-generic ones from <tgmath.h>."""

    def _print_Pow(self, e):
        b, x = e.base, e.exp
        if x.is_Integer and abs(int(x)) <= 16:
            k = abs(int(x))
            base = self.parenthesize(b, 1000)
            prod = f"({'*'.join([base] * k)})" if k else "1.0"   # always one C term
            return prod if x > 0 else f"(1.0/{prod})"
        if x == sp.Rational(1, 2):
            return f"sqrt({self._print(b)})"
        if x == -sp.Rational(1, 2):
            return f"(1.0/sqrt({self._print(b)}))"
        return f"pow({self._print(b)}, {self._print(sp.Float(x) if x.is_Rational else x)})"

    def _print_Function(self, e):
        return f"{e.func.__name__}({', '.join(self._print(a) for a in e.args)})"

    _print_exp = _print_log = _print_sin = _print_cos = _print_tan = _print_Function
    _print_sinh = _print_cosh = _print_tanh = _print_asin = _print_acos = _print_Function
    _print_atan = _print_asinh = _print_acosh = _print_atanh = _print_Function

    def _print_Pi(self, e):
        return "3.14159265358979323846"


_PRINTER = _Printer()


def c_block(outputs, scalar):
    """C statements computing named outputs with CSE: outputs = [(lhs, expr), ...]."""
    lhs = [name for name, _ in outputs]
    subs, reduced = sp.cse([e for _, e in outputs], symbols=sp.numbered_symbols("c_"),
                           optimizations="basic")
    lines = [f"const {scalar} {s} = {_PRINTER.doprint(e)};" for s, e in subs]
    lines += [f"{name} = {_PRINTER.doprint(e)};" for name, e in zip(lhs, reduced)]
    return lines


def kernel_source(fname, scalar, dim, pre, blocks, args):
    """One batched C function: for each point, load x_k, then run the guarded blocks.

    blocks: [(condition, [statements])]; pre: statements run for every point."""
    body = [f"const {scalar} x_{k} = x[i*{dim} + {k}];" for k in range(dim)] + pre
    for cond, stmts in blocks:
        body.append(f"if ({cond}) {{")
        body += ["    " + s for s in stmts]
        body.append("}")
    inner = "\n".join("        " + s for s in body)
    return (f"int {fname}({args})\n{{\n    (void)ctx;\n"
            f"    for (int64_t i = 0; i < n; i++) {{\n{inner}\n    }}\n    return 0;\n}}\n")


HEADER = "#include <stdint.h>\n#include <complex.h>\n#include <tgmath.h>\n\n"
SCALARS = (("d", "double"), ("z", "double complex"))


# ---------------------------------------------------------------- compile and cache
def cache_dir() -> Path:
    root = os.environ.get("FLOWCORE_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flowcore"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def compiler():
    cc = os.environ.get("CC") or (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        if shutil.which("cc") is None:
            raise RuntimeError("flowcore needs a C compiler for Loss.from_expr; install gcc or set CC")
        cc = "cc"
    return cc


_LOADED: dict[str, ctypes.CDLL] = {}


def build(key_parts, make_source):
    """Load the shared library for key_parts, generating and compiling it on a miss.

    The key hashes the expression (as srepr), the codegen version, compiler and flags,
    so a cache hit skips sympy entirely. Writes are atomic (rename)."""
    cc = compiler()
    key = hashlib.sha256("\0".join([CODEGEN_VERSION, cc, *CFLAGS, *key_parts]).encode()).hexdigest()[:32]
    if key in _LOADED:
        return _LOADED[key]
    so = cache_dir() / f"fc_{key}.so"
    if not so.exists():
        src = make_source()
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            c_file, out = Path(tmp) / f"fc_{key}.c", Path(tmp) / f"fc_{key}.so"
            c_file.write_text(src)
            proc = subprocess.run([cc, *CFLAGS, "-o", str(out), str(c_file), "-lm"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"compiling generated code failed:\n{proc.stderr[-4000:]}")
            shutil.copy(c_file, so.with_suffix(".c"))   # kept beside the .so for reading
            os.replace(out, so)
    lib = ctypes.CDLL(str(so))
    _LOADED[key] = lib
    return lib


def address(lib, symbol):
    return ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value


# ----------------------------------------------------------------------------- losses
LOSS_ARGS = ("const void *ctx, int64_t n, const {s} *x, const {s} *v, "
             "{s} *E, {s} *g, {s} *H, {s} *T")


def loss_derivatives(expr, syms):
    """(E, g, H, T) as sympy objects; T[v,v] = ∇(vᵀHv) with v = (v_0, ...)."""
    D = len(syms)
    g = [sp.diff(expr, s) for s in syms]
    H = [[sp.diff(gi, s) for s in syms] for gi in g]
    v = sp.symbols(f"v_0:{D}")
    q = sum(H[j][k] * v[j] * v[k] for j in range(D) for k in range(D))
    T = [sp.diff(q, s) for s in syms]
    return expr, g, H, T, v


def loss_source(expr, syms):
    D = len(syms)
    xs = sp.symbols(f"x_0:{D}")
    E, g, H, T, v = loss_derivatives(expr.xreplace(dict(zip(syms, xs))), xs)
    src = HEADER
    for suffix, scalar in SCALARS:
        gout = [(f"g[i*{D} + {k}]", g[k]) for k in range(D)]
        hout = [(f"H[i*{D * D} + {j * D + k}]", H[j][k]) for j in range(D) for k in range(D)]
        blocks = [
            ("E", c_block([("E[i]", E)], scalar)),
            ("g && H", c_block(gout + hout, scalar)),
            ("g && !H", c_block(gout, scalar)),
            ("H && !g", c_block(hout, scalar)),
            ("T", [f"const {scalar} v_{k} = v[i*{D} + {k}];" for k in range(D)]
             + c_block([(f"T[i*{D} + {k}]", T[k]) for k in range(D)], scalar)),
        ]
        src += kernel_source(f"fc_eval_{suffix}", scalar, D, [], blocks,
                             LOSS_ARGS.format(s=scalar)) + "\n"
    return src


def loss_from_expr(expr, vars=None, name=None):
    from flowcore._loss import Loss
    if isinstance(expr, (list, tuple, sp.MatrixBase)):
        raise ExpressionError("a loss must be one scalar expression; for a vector field use "
                              "flowcore.Field.from_expr([...])")
    text = expr if isinstance(expr, str) else None
    e = parse(expr, "loss")
    if not isinstance(e, sp.Expr) or isinstance(e, sp.MatrixBase):
        raise ExpressionError(f"loss must be a scalar sympy expression, got {type(e).__name__}")
    check_holomorphic(e, "loss")
    syms, (e,) = resolve_vars([e], vars, "loss")
    lib = build(["loss", sp.srepr(e), *map(str, syms)], lambda: loss_source(e, syms))
    return Loss._compiled(name or text or str(e), len(syms), lib,
                          address(lib, "fc_eval_d"), address(lib, "fc_eval_z"), e, syms)


# ----------------------------------------------------------------------------- fields
FIELD_ARGS = "const void *ctx, int64_t n, const {s} *x, {s} *out"


def field_source(exprs, syms):
    D = len(syms)
    xs = sp.symbols(f"x_0:{D}")
    fs = [e.xreplace(dict(zip(syms, xs))) for e in exprs]
    src = HEADER
    for suffix, scalar in SCALARS:
        block = c_block([(f"out[i*{D} + {k}]", fs[k]) for k in range(D)], scalar)
        src += kernel_source(f"fc_field_{suffix}", scalar, D, block, [],
                             FIELD_ARGS.format(s=scalar)) + "\n"
    return src


def field_from_expr(exprs, vars=None, name=None):
    from flowcore._field import _expr_field
    if isinstance(exprs, (str, sp.Expr)) or not hasattr(exprs, "__len__"):
        raise ExpressionError("a field is a list of expressions, one per coordinate, "
                              "e.g. Field.from_expr(['y', '-x'], vars=('x', 'y'))")
    es = [parse(e, "field") for e in exprs]
    for e in es:
        if not isinstance(e, sp.Expr):
            raise ExpressionError(f"field components must be scalar expressions, got {e!r}")
        check_holomorphic(e, "field")
    syms, es = resolve_vars(es, vars, "field")
    if len(es) != len(syms):
        raise ExpressionError(f"field has {len(es)} components but {len(syms)} variables "
                              f"{[s.name for s in syms]}; pass vars= with one name per component")
    lib = build(["field", *map(sp.srepr, es), *map(str, syms)], lambda: field_source(es, syms))
    label = name or "[" + ", ".join(map(str, es)) + "]"
    return _expr_field(label, len(syms), lib, address(lib, "fc_field_d"), address(lib, "fc_field_z"),
                       es, syms)
