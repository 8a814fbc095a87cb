"""Expressions as flowcore reads them: a restricted grammar for text, a whitelist for sympy trees.

A loss or field written as text is parsed by :func:`parse` into a sympy expression without ever
evaluating the text as Python; :func:`check_supported` refuses anything that cannot be compiled
faithfully to C at real and complex points; :func:`resolve_vars` orders the coordinates. The
analysis layer (BEA, figures) reads expressions through the same functions.
"""
import ast
import re

import sympy as sp

from flowcore.engine._errors import ExpressionError

__all__ = ["parse", "check_supported", "resolve_vars", "FUNCTIONS", "C_FUNCTIONS", "ExpressionError"]

# Functions analytic on their domain and available for complex arguments in C99: sympy class ->
# the C name printed (only these names ever reach the emitted C).
C_FUNCTIONS = {sp.exp: "exp", sp.log: "log", sp.sin: "sin", sp.cos: "cos", sp.tan: "tan",
               sp.sinh: "sinh", sp.cosh: "cosh", sp.tanh: "tanh", sp.asin: "asin", sp.acos: "acos",
               sp.atan: "atan", sp.asinh: "asinh", sp.acosh: "acosh", sp.atanh: "atanh"}
HOLOMORPHIC = tuple(C_FUNCTIONS)
# The functions expression text may call: name -> sympy constructor.
FUNCTIONS = {name: cls for cls, name in C_FUNCTIONS.items()}
FUNCTIONS["sqrt"] = sp.sqrt
NOT_HOLOMORPHIC = {
    sp.Abs: "abs", sp.conjugate: "conjugate", sp.re: "re", sp.im: "im", sp.sign: "sign",
    sp.floor: "floor", sp.ceiling: "ceiling", sp.Max: "Max", sp.Min: "Min",
    sp.Piecewise: "Piecewise", sp.Heaviside: "Heaviside", sp.arg: "arg",
}
_NOT_HOLOMORPHIC_NAMES = {"abs", "max", "min", "Abs", "Max", "Min", "sign", "floor", "ceiling", "ceil",
                          "re", "im", "conjugate", "Heaviside", "arg", "Piecewise", "round"}
_CONSTANTS = {"pi": sp.pi}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_BINARY = {ast.Add: sp.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sp.Mul,
           ast.Div: lambda a, b: a / b, ast.Pow: sp.Pow}
_WHAT_NODE = {ast.Attribute: "attribute access (a.b)", ast.Subscript: "subscripts (a[i])",
              ast.Lambda: "lambda", ast.IfExp: "conditional expressions (a if c else b)",
              ast.Compare: "comparisons", ast.BoolOp: "and/or", ast.JoinedStr: "strings",
              ast.ListComp: "comprehensions", ast.GeneratorExp: "comprehensions",
              ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
              ast.List: "lists", ast.Tuple: "tuples", ast.Dict: "dicts", ast.Set: "sets",
              ast.Starred: "starred arguments", ast.NamedExpr: "assignment (:=)"}


# --------------------------------------------------------------------------- parsing
def parse(expr, what="expression"):
    """A sympy expression from a string or a sympy object; never evaluates text as Python.

    Text is read by a restricted grammar: numbers, names (every name not called is a variable,
    so 'E', 'beta', 'gamma' are variables, not sympy's constants, except 'pi'), + − * / ** (and
    '^' for power), unary minus, parentheses, and calls of exp, log, sqrt and the (inverse)
    trigonometric and hyperbolic functions. Anything else (attributes, subscripts, strings,
    comments, lambdas, keywords, other functions) is an ExpressionError naming it. A sympy object
    is checked the same way by :func:`check_supported`.
    """
    if isinstance(expr, str):
        return _parse_text(expr, what)
    if isinstance(expr, bool) or not isinstance(expr, (sp.Basic, int, float)):
        raise ExpressionError(f"{what}: expected a string or a sympy expression, got "
                              f"{type(expr).__name__}")
    expr = sp.sympify(expr)          # a sympy object or a Python number: no text is evaluated
    check_supported(expr, what)
    return expr


MAX_TEXT = 10_000          # characters of expression text
MAX_NUMBER_BITS = 4096     # binary digits of an exact constant (float64 spans about 2**±1074)


def _parse_text(text, what):
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"{what}: the text is {len(text):,} characters long (at most {MAX_TEXT:,}); build "
                              "a large expression with sympy, or write the loss in C (fc.Loss.from_library)")
    odd = next(((i, c) for i, c in enumerate(text) if not c.isascii()), None)
    if odd is not None:
        i, c = odd
        raise ExpressionError(f"{what}: expression text is ASCII; {c!r} (U+{ord(c):04X}) at position {i} is not "
                              "(name variables with ASCII letters, e.g. theta for θ)")
    if "#" in text or "\\" in text:
        raise ExpressionError(f"{what}: comments and backslashes are not part of an expression: {text!r}")
    try:
        tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{what}: cannot parse {text!r}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"{what}: the expression is nested too deeply (or has too many terms in a row) for "
                              "Python's parser; build it with sympy (e.g. sympy.Add(*terms))") from None
    try:
        e = _from_node(tree.body, what, text)
    except ZeroDivisionError:
        raise ExpressionError(f"{what}: division by zero in {text!r}") from None
    except RecursionError:
        raise ExpressionError(f"{what}: the expression is nested too deeply to read; build it with sympy") from None
    check_supported(e, what)
    return e


def _from_node(node, what, text):
    """sympy from one whitelisted AST node (recursively)."""
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            kind = "imaginary numbers" if isinstance(v, complex) else f"{type(v).__name__} literals"
            raise ExpressionError(f"{what}: {kind} are not allowed in {text!r}")
        if isinstance(v, float) and (v == 0 or v == float("inf")):
            literal = ast.get_source_segment(text.replace("^", "**").strip(), node) or "0"
            if v != 0 or any(c in "123456789" for c in literal.lower().split("e")[0]):
                raise ExpressionError(f"{what}: the number {literal} does not fit in float64 (it would be {v}); "
                                      "float64 holds magnitudes from about 5e-324 to 1.8e308")
        return sp.Integer(v) if isinstance(v, int) else sp.Float(v)
    if isinstance(node, ast.Name):
        name = node.id
        if not _NAME.match(name):
            raise ExpressionError(f"{what}: name {name!r} is not allowed (names start with a letter)")
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        return sp.Symbol(name)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        x = _from_node(node.operand, what, text)
        return -x if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power(_from_node(node.left, what, text), _from_node(node.right, what, text), what, text)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        # a long sum or product is a left-deep chain: walk it in a loop, not by recursion
        chain = []
        while isinstance(node, ast.BinOp) and type(node.op) in _BINARY and not isinstance(node.op, ast.Pow):
            chain.append((node.op, node.right))
            node = node.left
        e = _from_node(node, what, text)
        for op, right in reversed(chain):
            e = _BINARY[type(op)](e, _from_node(right, what, text))
        return e
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name is None:
            raise ExpressionError(f"{what}: only named functions can be called, in {text!r}")
        if name in _NOT_HOLOMORPHIC_NAMES:
            raise ExpressionError(
                f"{what}: {'abs' if name == 'Abs' else name}() is not holomorphic; flowcore evaluates losses and fields "
                "at complex points, so use analytic functions (e.g. a smooth surrogate)")
        if name not in FUNCTIONS:
            raise ExpressionError(f"{what}: undefined function {name!r} in {text!r}; the functions are "
                                  f"{', '.join(sorted(FUNCTIONS))}")
        if node.keywords or len(node.args) != 1:
            raise ExpressionError(f"{what}: {name}() takes exactly one argument, in {text!r}")
        return FUNCTIONS[name](_from_node(node.args[0], what, text))
    label = _WHAT_NODE.get(type(node), type(node).__name__)
    if isinstance(node, ast.BinOp):
        label = f"the operator {type(node.op).__name__}"
    raise ExpressionError(f"{what}: {label} not allowed in {text!r}; expressions use numbers, "
                          "variables, + - * / ** and functions such as exp, log, sin")


def _bits(x):
    """Binary digits of the numerator and denominator of a rational x (0 for 0)."""
    return max(abs(int(x.p)).bit_length(), int(x.q).bit_length())


def _power(base, exp, what, text):
    """base ** exp, refused before sympy evaluates it when both are numbers and the result would
    have more than MAX_NUMBER_BITS binary digits (10**10**10, 9**9**9**9, 2**-100000: exact powers
    that take minutes and gigabytes, and no float64 could hold)."""
    if base.is_Rational and exp.is_Integer and base not in (0, 1, -1):
        bits = abs(int(exp)) * _bits(base) if abs(int(exp)) < 2**40 else float("inf")
        if bits > MAX_NUMBER_BITS:
            raise ExpressionError(f"{what}: the constant {base}**{exp if abs(int(exp)) < 10**12 else '(huge)'} in "
                                  f"{text[:80]!r} has about {bits:.3g} binary digits; constants must fit in float64 "
                                  f"(at most {MAX_NUMBER_BITS} digits here)")
    if base.is_Rational and exp.is_Rational and not exp.is_Integer and _bits(exp) > 64:
        raise ExpressionError(f"{what}: the exponent {exp} in {text[:80]!r} is too fine a fraction to evaluate")
    return sp.Pow(base, exp)


def degree_bound(expr):
    """An upper bound on the total degree of ``expr`` expanded, read from its tree without
    expanding it (Add: the max, Mul: the sum, Pow with a non-negative integer exponent: the exponent
    times the base's), or None where it is not a polynomial (a function of the variables, a negative
    or fractional power of them)."""
    if not expr.free_symbols:
        return 0
    if expr.is_Symbol:
        return 1
    if expr.is_Add or expr.is_Mul:
        parts = [degree_bound(a) for a in expr.args]
        if any(d is None for d in parts):
            return None
        return max(parts) if expr.is_Add else sum(parts)
    if expr.is_Pow and expr.exp.is_Integer and expr.exp >= 0:
        d = degree_bound(expr.base)
        return None if d is None else d * int(expr.exp)
    return None


def check_supported(expr, what="expression"):
    """Raise ExpressionError for anything flowcore cannot compile faithfully: non-holomorphic or
    unknown functions (by exact class: a subclass of exp is not exp), the imaginary unit (a loss
    is real on real points), infinities and NaN (e.g. x/0), and any other sympy object (Sum,
    Integral, EulerGamma, …)."""
    if not isinstance(expr, sp.Expr):
        raise ExpressionError(f"{what}: expected a scalar expression, got {type(expr).__name__}")
    for f in sp.preorder_traversal(expr):
        cls = type(f)
        if isinstance(f, (sp.Symbol, sp.Add, sp.Mul, sp.Pow)) and cls in (sp.Symbol, sp.Dummy, sp.Add,
                                                                           sp.Mul, sp.Pow):
            continue
        if cls in C_FUNCTIONS:
            continue
        if isinstance(f, (sp.Integer, sp.Rational)) or cls is sp.Float:
            if isinstance(f, sp.Float) and not f.is_finite:
                raise ExpressionError(f"{what}: the number {f} is not finite")
            v = float(f)
            if v in (float("inf"), float("-inf")) or (v == 0 and f != 0):
                raise ExpressionError(f"{what}: the number {f} does not fit in float64 (it would be {v}); "
                                      "float64 holds magnitudes from about 5e-324 to 1.8e308")
            continue
        if f in (sp.pi, sp.E):
            continue
        if f is sp.I or isinstance(f, sp.core.numbers.ImaginaryUnit):
            raise ExpressionError(f"{what}: the imaginary unit I in {expr}: losses and fields are real "
                                  "on real points (flowcore extends them to complex points itself)")
        if f in (sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise ExpressionError(f"{what}: {expr} is not finite (a division by zero?)")
        if isinstance(f, sp.core.function.AppliedUndef):
            raise ExpressionError(f"{what}: undefined function {f.func.__name__!r}")
        for c, label in NOT_HOLOMORPHIC.items():
            if isinstance(f, c):
                raise ExpressionError(
                    f"{what}: {label}(...) in {f} is not holomorphic; flowcore evaluates at "
                    "complex points (e.g. the principal flow), so use analytic functions only")
        name = getattr(cls, "__name__", str(cls))
        raise ExpressionError(f"{what}: {name} is not supported in {expr}; use numbers, variables, "
                              f"+ - * / ** and the functions {', '.join(sorted(FUNCTIONS))}")


def resolve_vars(exprs, vars, what="expression"):
    """Coordinate symbols in order, and the expressions rewritten onto plain Symbols."""
    free = set().union(*(e.free_symbols for e in exprs))
    by_name = {}
    for s in sorted(free, key=sp.default_sort_key):
        if by_name.setdefault(s.name, s) != s:
            raise ExpressionError(f"{what}: two different symbols share the name {s.name!r} (sympy Symbols "
                                  "with different assumptions, or a Dummy); give each variable its own name")
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


# ----------------------------------------------------------------------------- LaTeX for notebooks
def latex_loss(expr, vars):
    """``$E(x, y) = …$`` (None when the loss has no expression: the notebook shows the repr)."""
    if expr is None:
        return None
    return rf"$E({', '.join(sp.latex(v) for v in vars)}) = {sp.latex(expr)}$"


def latex_field(exprs, vars):
    """``$\\frac{d}{dt}(x, y)ᵀ = (f_x, f_y)ᵀ$`` of a field written as expressions."""
    return rf"$\frac{{d}}{{dt}}{sp.latex(sp.Matrix(vars))} = {sp.latex(sp.Matrix(list(exprs)))}$"


def latex_spectral_flow(kind, coef, lr, np_coef, loss, tracked):
    """θ' = α(hH)∇E (+ c h² ∇³E[∇E, ∇E]), α, h and E, one line each (DESIGN §1)."""
    z = sp.Symbol("z")
    if kind == "pf":
        alpha = r"\frac{\log(1 - z)}{z}\quad\text{(%s)}" % (
            "the log's branch continued along the path" if tracked else "the principal branch")
    elif kind == "poly":
        alpha = sp.latex(sum(sp.nsimplify(c) * z**p for p, c in enumerate(coef)), order="rev-lex")
    else:
        alpha = r"\text{a Python function of } z = h\lambda"
    rhs = r"\alpha(hH)\,\nabla E"
    if np_coef:
        rhs += rf" {'+' if np_coef > 0 else '-'} {sp.latex(sp.nsimplify(abs(np_coef) / lr**2))}\,h^2\,\nabla^3E[\nabla E, \nabla E]"
    lines = [rf"\dot\theta &= {rhs}", rf"\alpha(z) &= {alpha},\quad h = {lr:g}"]
    if loss.expr is not None:
        lines.append(latex_loss(loss.expr, loss.vars).strip("$").replace(" = ", " &= ", 1))
    return r"$$\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}$$"


def exact_number(c):
    """A float as an exact sympy number when it is an integer, else a 17-digit Float."""
    return sp.Integer(int(c)) if c == int(c) else sp.Float(c, 17)
