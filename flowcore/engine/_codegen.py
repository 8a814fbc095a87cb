"""sympy -> C: generate batched kernels for checked expressions (flowcore.engine.expressions), compile
and cache them.

Generated code has the signatures of flowcore/include/flowcore_abi.h and is written once per
SCALAR (double, double complex); <tgmath.h> makes exp/log/... type-generic, so the
complex kernel is the holomorphic extension of the real one.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import math
import os
import re
import shutil
import stat
import subprocess
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path

import sympy as sp
from sympy.printing.c import C99CodePrinter

from flowcore.engine._errors import ExpressionError
from flowcore.engine.expressions import C_FUNCTIONS, check_supported, parse, resolve_vars

CODEGEN_VERSION = "4"
# -ffp-contract=off: a*b + c is never fused into an FMA, so a kernel built for the target's
# vectors (native_flags) rounds as the same kernel built without them, lane for lane
CFLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-ffp-contract=off"]
OPTIONAL_CFLAGS = ["-fcx-fortran-rules"]      # GCC's: complex * and / without Annex G recovery


# ------------------------------------------------------------------------ C printing
# The only names a kernel's expressions may print: coordinates x_k, directions v_k, data d_k,
# common subexpressions c_k, noise dW_k, diffusion entries G_q_j, two-point variables V_j_r, dt
# and lr — all generated here. A user's symbol never reaches C by name (its name could be C code).
GENERATED_NAME = re.compile(r"(?:(?:x|v|d|c|dW)_\d+|[GV]_\d+_\d+|dt|lr)\Z")


class _Printer(C99CodePrinter):
    """C99 printer whose integer powers are products (no cpow for complex), whose functions are
    the type-generic ones from <tgmath.h>, and whose symbols are generated names only."""

    def _print_Symbol(self, e):
        if not GENERATED_NAME.match(e.name):
            raise ExpressionError(f"the symbol {e.name!r} was not renamed before code generation (a variable "
                                  "name never reaches C); report this as a flowcore bug")
        return e.name

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
        # only the whitelisted C names are ever emitted (check_supported ran before)
        return f"{C_FUNCTIONS[type(e)]}({', '.join(self._print(a) for a in e.args)})"

    _print_exp = _print_log = _print_sin = _print_cos = _print_tan = _print_Function
    _print_sinh = _print_cosh = _print_tanh = _print_asin = _print_acos = _print_Function
    _print_atan = _print_asinh = _print_acosh = _print_atanh = _print_Function

    def _print_Integer(self, e):
        # a double literal: C++ (the CUDA target) has no int * complex, and a C integer
        # literal past 2**63 is truncated by the compiler
        return _double(e)

    def _print_Rational(self, e):
        return _double(e)

    def _print_Float(self, e):
        return _double(e)

    def _print_Pi(self, e):
        return "3.14159265358979323846"

    def _print_Exp1(self, e):
        return "2.71828182845904523536"


def _double(x):
    """A sympy number as a correctly rounded double literal (refused if it overflows, or if it is
    not zero and rounds to zero)."""
    v = float(x)
    if not math.isfinite(v) or (v == 0 and x != 0):
        raise ExpressionError(f"the constant {x} does not fit in float64 (it would be {v})")
    return repr(v)


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
_PRIVATE_DIR = None


def _alive(pid):
    """Is process ``pid`` running on this machine (or can we not tell)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # another user's process: alive
        return True
    return True


def _owner_pid(name, prefix):
    """The process id written into a temporary's name ``{prefix}{pid}-…``, or None."""
    head = name[len(prefix):].split("-", 1)[0]
    return int(head) if name.startswith(prefix) and head.isdigit() else None


def _private_fallback(reason):
    """A private temporary cache for this process, used when the configured one is unsafe; removed
    when the process exits (and, if it was killed, by the next process that needs one)."""
    global _PRIVATE_DIR
    if _PRIVATE_DIR is None:
        prefix = "flowcore-cache-"
        for old in Path(tempfile.gettempdir()).glob(prefix + "*"):
            pid = _owner_pid(old.name, prefix)
            try:
                mine = old.stat().st_uid == os.getuid()
            except OSError:
                continue
            if mine and pid is not None and not _alive(pid):
                shutil.rmtree(old, ignore_errors=True)
        _PRIVATE_DIR = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))   # mode 0700
        atexit.register(shutil.rmtree, _PRIVATE_DIR, True)
        warnings.warn(f"flowcore: {reason}; compiled expressions go to {_PRIVATE_DIR} for this "
                      "session (set FLOWCORE_CACHE to a private directory)", RuntimeWarning, stacklevel=3)
    return _PRIVATE_DIR


def cache_dir() -> Path:
    """The compile cache: $FLOWCORE_CACHE or ~/.cache/flowcore, created private (0700).

    Loading a library runs its code, so a directory that someone else owns or can write to is
    refused (with a warning, for a private temporary one), and so is one we cannot write."""
    root = os.environ.get("FLOWCORE_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flowcore"
    path = Path(root)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        return _private_fallback(f"cannot create the cache directory {path} ({exc.strerror})")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return _private_fallback(f"the cache directory {path} belongs to another user")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return _private_fallback(f"the cache directory {path} is writable by others")
    if not os.access(path, os.W_OK | os.X_OK):
        return _private_fallback(f"the cache directory {path} is not writable")
    return path


def compiler():
    return _compiler(os.environ.get("CC"))


@functools.lru_cache(maxsize=8)
def _compiler(env_cc):
    """The compiler $CC names (or Python's, or cc), looked up on the PATH once (every kernel
    lookup asks, and a PATH search is ten stat calls)."""
    cc = env_cc or (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        if shutil.which("cc") is None:
            raise RuntimeError("flowcore needs a C compiler for Loss.from_expr; install gcc or set CC")
        cc = "cc"
    return cc


_LOADED: dict[str, ctypes.CDLL] = {}
_FLAGS: dict[str, list] = {}


def _accepts(cc, flag, source="double f(double x) { return x; }\n"):
    """Does the compiler build a shared library from ``source`` with ``flag``?"""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(source)
        proc = subprocess.run([cc, *CFLAGS, flag, "-o", str(Path(tmp) / "probe.so"), str(src)],
                              capture_output=True)
    return proc.returncode == 0


def cflags(cc):
    """CFLAGS plus the optional flags this compiler accepts (probed once per compiler)."""
    if cc not in _FLAGS:
        _FLAGS[cc] = CFLAGS + [flag for flag in OPTIONAL_CFLAGS if _accepts(cc, flag)]
    return _FLAGS[cc]


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _trusted(so, key):
    """Is the cached library the one we compiled for this key? Its digest, recorded beside it at
    compile time, must match (a truncated, corrupted, planted or swapped file fails)."""
    rec = so.with_suffix(".sha256")
    try:
        return so.is_file() and rec.read_text().split() == [_digest(so), key]
    except OSError:
        return False


def _remove_stale(folder, age=3600.0):
    """Temporaries left by a compile that was killed: at once when the process that made one
    (its id is in the name) is gone, else once older than ``age`` seconds (a cache shared across
    machines, where a process id says nothing)."""
    now = time.time()
    for p in folder.glob("tmp-*"):
        try:
            pid = _owner_pid(p.name, "tmp-")
            if (pid is not None and not _alive(pid)) or now - p.stat().st_mtime > age:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _key(key_parts):
    cc = compiler()
    return hashlib.sha256("\0".join([CODEGEN_VERSION, cc, *cflags(cc), *key_parts]).encode()).hexdigest()[:32]


def _cached(key_parts):
    """Is this expression compiled already (loaded, or a trusted library in the cache)?"""
    key = _key(key_parts)
    return key in _LOADED or _trusted(cache_dir() / f"fc_{key}.so", key)


def openmp_flags(cc=None):
    """['-fopenmp'] when the compiler builds and links OpenMP code (probed once), else []."""
    cc = cc or compiler()
    key = ("openmp", cc)
    if key not in _FLAGS:
        probe = "#include <omp.h>\nint f(void) { return omp_get_max_threads(); }\n"
        _FLAGS[key] = ["-fopenmp"] if _accepts(cc, "-fopenmp", probe) else []
    return _FLAGS[key]


def native_flags(cc=None):
    """``-march=native`` when the compiler takes it (for kernels that run trajectories in the
    lanes of this machine's vectors), and on x86 ``-mprefer-vector-width=512``: GCC otherwise
    keeps AVX-512 machines to 256-bit vectors (GD basins 0.28 → 0.22 s, IGR dopri5 0.138 →
    0.130 s with it). The key of such a kernel must name the machine (``native_target``): a cache
    shared by machines of different CPUs cannot hand one another's instructions."""
    cc = cc or compiler()
    key = ("native", cc)
    if key not in _FLAGS:
        flags = ["-march=native"] if _accepts(cc, "-march=native") else []
        if flags and _accepts(cc, "-mprefer-vector-width=512"):
            flags.append("-mprefer-vector-width=512")
        _FLAGS[key] = flags
    return _FLAGS[key]


MVEC_PROBE = """#pragma omp declare simd notinbranch
double v_atan2(double, double) __asm__("atan2");
#pragma omp declare simd notinbranch
double v_log1p(double) __asm__("log1p");
#pragma omp declare simd notinbranch
double v_log(double) __asm__("log");
void f(int n, const double *x, double *y)
{
    #pragma omp simd
    for (int i = 0; i < n; i++) y[i] = v_log1p(x[i]) + v_atan2(x[i], 1.0) + v_log(x[i]);
}
"""


def mvec_flags(cc=None):
    """(defines, libraries) for glibc's vector math (libmvec) in lane kernels: (['-DFC_MVEC'],
    ['-lmvec']) when a library built for this machine's vectors links against it with every symbol
    resolved (probed once), else ([], []): the lanes then call the scalar functions."""
    cc = cc or compiler()
    key = ("mvec", cc)
    if key not in _FLAGS:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "probe.c"
            src.write_text(MVEC_PROBE)
            proc = subprocess.run([cc, *CFLAGS, *openmp_flags(cc), *native_flags(cc), "-Wl,--no-undefined",
                                   "-o", str(Path(tmp) / "probe.so"), str(src), "-lmvec", "-lm"],
                                  capture_output=True)
        _FLAGS[key] = (["-DFC_MVEC"], ["-lmvec"]) if proc.returncode == 0 else ([], [])
    return _FLAGS[key]


def native_target(cc=None):
    """A digest of what ``-march=native`` means here (the compiler's predefined macros: its
    architecture and instruction-set extensions)."""
    cc = cc or compiler()
    key = ("native-target", cc)
    if key not in _FLAGS:
        proc = subprocess.run([cc, *native_flags(cc), "-dM", "-E", "-x", "c", os.devnull],
                              capture_output=True, text=True)
        _FLAGS[key] = hashlib.sha256("\n".join(sorted(proc.stdout.splitlines())).encode()).hexdigest()[:16]
    return _FLAGS[key]


def build(key_parts, make_source, what="expression", extra=(), libs=()):
    """Load the shared library for key_parts, generating and compiling it on a miss.

    The key hashes the expression (as srepr), the codegen version, compiler and flags, so a cache
    hit skips sympy entirely. A library is loaded only if its recorded digest matches; a bad
    entry is removed and rebuilt. Writes are atomic (rename); the library also carries its key
    (``fc_key``), checked after loading. ``libs``: libraries linked after the source."""
    cc = compiler()
    key = _key([*key_parts, *extra, *libs])
    if key in _LOADED:
        return _LOADED[key]
    folder = cache_dir()
    so = folder / f"fc_{key}.so"
    if not _trusted(so, key):
        for stale in (so, so.with_suffix(".sha256")):
            stale.unlink(missing_ok=True)
        _remove_stale(folder)
        src = make_source() + f'\nconst char fc_key[] = "{key}";\n'
        with tempfile.TemporaryDirectory(dir=folder, prefix=f"tmp-{os.getpid()}-") as tmp:
            c_file, out = Path(tmp) / f"fc_{key}.c", Path(tmp) / f"fc_{key}.so"
            c_file.write_text(src)
            t0 = time.perf_counter()
            proc = subprocess.run([cc, *cflags(cc), *extra, "-o", str(out), str(c_file), *libs, "-lm"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"compiling the generated code for {what} failed "
                                   f"(compiler {cc}):\n{proc.stderr[-4000:]}")
            _note_slow(f"compiled {what}", time.perf_counter() - t0)
            rec = Path(tmp) / "digest"
            rec.write_text(f"{_digest(out)} {key}\n")
            shutil.copy(c_file, so.with_suffix(".c"))   # kept beside the .so for reading
            os.replace(out, so)
            os.replace(rec, so.with_suffix(".sha256"))
    lib = ctypes.CDLL(str(so))
    if (ctypes.c_char * (len(key) + 1)).in_dll(lib, "fc_key").value.decode() != key:
        raise RuntimeError(f"the cached library {so} does not belong to this expression; delete it")
    _LOADED[key] = lib
    return lib


def _note_slow(what, seconds, threshold=5.0):
    if seconds > threshold:
        import sys
        print(f"flowcore: {what} took {seconds:.0f} s (cached now)", file=sys.stderr)


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


def check_size(ops, limit, what):
    """Refuse a compile that would run for minutes (sympy CSE and gcc grow faster than linearly:
    about 1600 operations × D² = 4 took 100 s and 800 MB); announce one that takes a while."""
    if limit is not None and ops > limit:
        raise ExpressionError(
            f"{what} is large ({ops} operations × dimension², limit max_ops={limit}): generating and "
            "compiling it would take minutes and gigabytes; simplify it, or pass max_ops=None "
            "(or a larger number) to compile it anyway")
    if ops > 1000:
        import sys
        print(f"flowcore: generating C for {what} ({ops} operations × D²); this can take a minute…",
              file=sys.stderr)


def compile_loss(expr, vars=None, name=None, max_ops=5000):
    """Compile a loss expression: (label, D, library, address of fc_eval_d, of fc_eval_z, the
    sympy expression, its symbols) — what :meth:`flowcore.Loss.from_expr` wraps."""
    if isinstance(expr, (list, tuple, sp.MatrixBase)):
        raise ExpressionError("a loss must be one scalar expression; for a vector field use "
                              "flowcore.Field.from_expr([...])")
    text = expr if isinstance(expr, str) else None
    e = parse(expr, "loss")
    if not isinstance(e, sp.Expr) or isinstance(e, sp.MatrixBase):
        raise ExpressionError(f"loss must be a scalar sympy expression, got {type(e).__name__}")
    check_supported(e, "loss")
    syms, (e,) = resolve_vars([e], vars, "loss")
    key = ["loss", sp.srepr(e), *map(str, syms)]
    if not _cached(key):
        check_size(sp.count_ops(e) * len(syms) ** 2, max_ops, "the loss")
    lib = build(key, lambda: loss_source(e, syms), "the loss")
    return (name or text or str(e), len(syms), lib, address(lib, "fc_eval_d"), address(lib, "fc_eval_z"), e, syms)


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


def compile_field(exprs, vars=None, name=None, max_ops=5000):
    """Compile a field's expressions: (label, D, library, addresses of fc_field_d and fc_field_z,
    the expressions, their symbols) — what :meth:`flowcore.Field.from_expr` wraps."""
    if isinstance(exprs, (str, sp.Expr)) or not hasattr(exprs, "__len__"):
        raise ExpressionError("a field is a list of expressions, one per coordinate, "
                              "e.g. Field.from_expr(['y', '-x'], vars=('x', 'y'))")
    es = [parse(e, "field") for e in exprs]
    for e in es:
        if not isinstance(e, sp.Expr):
            raise ExpressionError(f"field components must be scalar expressions, got {e!r}")
        check_supported(e, "field")
    syms, es = resolve_vars(es, vars, "field")
    if len(es) != len(syms):
        raise ExpressionError(f"field has {len(es)} components but {len(syms)} variables "
                              f"{[s.name for s in syms]}; pass vars= with one name per component")
    key = ["field", *map(sp.srepr, es), *map(str, syms)]
    if not _cached(key):
        check_size(sum(sp.count_ops(e) for e in es), max_ops, "the field")
    lib = build(key, lambda: field_source(es, syms), "the field")
    label = name or "[" + ", ".join(map(str, es)) + "]"
    return (label, len(syms), lib, address(lib, "fc_field_d"), address(lib, "fc_field_z"), es, syms)


# ------------------------------------------------------------------- means over data
DATA_CTX = "typedef struct { int64_t n; const double *data; } fc_data_ctx;\n\n"


def data_loss_source(expr, syms, dsyms):
    """E = (1/n) Σ_r ℓ(x; ξ_r) and its derivatives, summed in C over the rows of ctx->data [n, P]
    (for an ℓ that is not a polynomial in the data, whose mean has no short closed form)."""
    D, P = len(syms), len(dsyms)
    xs, ds = sp.symbols(f"x_0:{D}"), sp.symbols(f"d_0:{P}")
    E, g, H, T, v = loss_derivatives(expr.xreplace(dict(zip(syms, xs)) | dict(zip(dsyms, ds))), xs)
    src = HEADER + DATA_CTX
    for suffix, scalar in SCALARS:
        gh = c_block([(f"tg[{k}]", g[k]) for k in range(D)]
                     + [(f"tH[{j * D + k}]", H[j][k]) for j in range(D) for k in range(D)], scalar)
        row = [f"const double d_{k} = c->data[r*{P} + {k}];" for k in range(P)]
        row += ["if (E) {", f"    {scalar} tE;"] + ["    " + s for s in c_block([("tE", E)], scalar)]
        row += ["    aE += tE;", "}", "if (g || H) {", f"    {scalar} tg[{D}], tH[{D * D}];"]
        row += ["    " + s for s in gh]
        row += [f"    for (int k = 0; k < {D}; k++) ag[k] += tg[k];",
                f"    for (int k = 0; k < {D * D}; k++) aH[k] += tH[k];", "}",
                "if (T) {", f"    {scalar} tT[{D}];"]
        row += ["    " + s for s in c_block([(f"tT[{k}]", T[k]) for k in range(D)], scalar)]
        row += [f"    for (int k = 0; k < {D}; k++) aT[k] += tT[k];", "}"]
        body = [f"const {scalar} x_{k} = x[i*{D} + {k}];" for k in range(D)]
        body += [f"const {scalar} v_{k} = T ? v[i*{D} + {k}] : 0;" for k in range(D)]
        body += [f"(void)v_{k};" for k in range(D)]
        body += [f"{scalar} aE = 0, ag[{D}] = {{0}}, aH[{D * D}] = {{0}}, aT[{D}] = {{0}};",
                 "for (int64_t r = 0; r < c->n; r++) {"] + ["    " + s for s in row] + ["}",
                 "const double inv = 1.0 / (double)c->n;",
                 "if (E) E[i] = aE * inv;",
                 f"if (g) for (int k = 0; k < {D}; k++) g[i*{D} + k] = ag[k] * inv;",
                 f"if (H) for (int k = 0; k < {D * D}; k++) H[i*{D * D} + k] = aH[k] * inv;",
                 f"if (T) for (int k = 0; k < {D}; k++) T[i*{D} + k] = aT[k] * inv;"]
        inner = "\n".join("        " + s for s in body)
        src += (f"int fc_eval_{suffix}({LOSS_ARGS.format(s=scalar)})\n{{\n"
                "    const fc_data_ctx *c = (const fc_data_ctx *)ctx;\n"
                f"    for (int64_t i = 0; i < n; i++) {{\n{inner}\n    }}\n    return 0;\n}}\n\n")
    return src


def data_loss(example, syms, dsyms, data, abi_version, max_ops=5000):
    """An fc_loss struct for (1/n) Σ_r ℓ(θ; ξ_r) summed in C (no symbolic expression: the flows of
    it run on the generic path): (its address, what must stay alive) for Loss._from_struct."""

    class Ctx(ctypes.Structure):
        _fields_ = [("n", ctypes.c_int64), ("data", ctypes.c_void_p)]

    class Struct(ctypes.Structure):
        _fields_ = [("abi_version", ctypes.c_int32), ("dim", ctypes.c_int32), ("ctx", ctypes.c_void_p),
                    ("eval_d", ctypes.c_void_p), ("eval_z", ctypes.c_void_p)]

    key = ["data-loss", sp.srepr(example), *map(str, syms), *map(str, dsyms)]
    if not _cached(key):
        check_size(sp.count_ops(example) * len(syms) ** 2, max_ops, "the per-example loss")
    lib = build(key, lambda: data_loss_source(example, syms, dsyms), "the per-example loss")
    ctx = Ctx(data.shape[0], data.ctypes.data)
    struct = Struct(abi_version, len(syms), ctypes.addressof(ctx), address(lib, "fc_eval_d"),
                    address(lib, "fc_eval_z"))
    return ctypes.addressof(struct), (lib, ctx, struct, data)
