"""Helpers shared by the command groups: loss and point parsing, checked argument types, outputs."""
import argparse
import os

import numpy as np




def _zoo_names():
    import flowcore as fc
    return tuple(n for n in fc.losses.__all__ if n not in ("quadratic", "linear_regression", "logistic_regression"))

def _loss(spec, vars=None):
    """A zoo name (e.g. 'double_well', 'rosenbrock') or an expression. A bare name that is not
    in the zoo is refused (a typo must not become a loss that is one variable)."""
    import difflib
    import re
    import flowcore as fc
    name = spec.strip()
    ZOO = _zoo_names()
    if name in ZOO:
        return getattr(fc.losses, name)() if name != "quadratic_1d" else fc.losses.quadratic_1d(1.0)
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", name):
        close = difflib.get_close_matches(name, ZOO, n=2, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ValueError(f"--loss {name!r} is not a built-in loss: {hint}(built-ins: {', '.join(ZOO)}; "
                         "or give an expression such as 'x**2 + 25*y**2')")
    try:
        return fc.Loss.from_expr(spec, vars=vars)
    except fc.ExpressionError as exc:
        raise fc.ExpressionError(str(exc).replace("vars=", "--vars ").replace("loss:", "--loss:", 1)) from None

def _checked(kind, low=None, strict=False):
    """An argparse type: a finite number of ``kind`` (int or float), at least ``low`` (above it when
    ``strict``); argparse names the flag in its error and exits 2."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is float and not np.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite")
        if low is not None and (v <= low if strict else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low:g}, got {text!r}")
        return v
    parse.__name__ = "integer" if kind is int else "number"
    return parse


COUNT, NATURAL = _checked(int, 1), _checked(int, 0)          # ≥ 1, ≥ 0
FINITE, POSITIVE = _checked(float), _checked(float, 0.0, strict=True)

def _output(path, folder=None):
    """Check (and create) the folder an output goes to before any work is done: that of the PNG
    ``path``, or ``folder`` itself (the tour's -o)."""
    if path is None and folder is None:
        return None
    where = folder if folder is not None else os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"-o {path or folder}: cannot create the folder {where} ({exc.strerror})") from None
    if not os.access(where, os.W_OK):
        raise ValueError(f"-o {path or folder}: the folder {where} is not writable")
    return path

def _loss_of(args):
    return _loss(args.loss, args.vars.split(",") if args.vars else None)

def _add_loss(parser, help="zoo name or expression"):
    """--loss and --vars, shared by every subcommand that takes a loss."""
    parser.add_argument("--loss", required=True, help=help)
    parser.add_argument("--vars", help="comma-separated variable order (default: sorted names)")

def _points(text, dim, flag):
    """'x,y;x,y' or, with no ';' (which a shell splits), 'x,y,x,y' → points [n, dim] (complex as
    1+2j); for a 1-D loss 'a,b,c' is three points."""
    form = "a,b,c (one coordinate each)" if dim == 1 else "'x,y;x,y' or x,y,x,y"
    try:
        if ";" in text:
            rows = [[complex(c) if "j" in c else float(c) for c in p.split(",")] for p in text.split(";")]
        else:
            flat = [complex(c) if "j" in c else float(c) for c in text.split(",")]
            rows = [flat[i:i + dim] for i in range(0, len(flat), dim)]
    except ValueError:
        raise ValueError(f"{flag}: cannot read {text!r}; write points as {form}, complex as 1+2j") from None
    if any(len(r) != dim for r in rows):
        raise ValueError(f"{flag}: each point needs {dim} coordinate{'s' * (dim > 1)}, got "
                         f"{sorted({len(r) for r in rows})} in {text!r}; write points as {form}")
    return np.array(rows)

def _point(text, flag, dim=None):
    """One real point 'x,y,...' of finite coordinates (``dim`` of them when given)."""
    try:
        v = np.array([float(c) for c in text.split(",")])
    except ValueError:
        raise ValueError(f"{flag} {text!r}: write the coordinates as numbers separated by commas, e.g. 0.5,1") from None
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{flag} {text!r}: every coordinate must be finite")
    if dim is not None and v.size != dim:
        raise ValueError(f"{flag} {text!r}: needs {dim} coordinate{'s' * (dim > 1)}, got {v.size}")
    return v

def _jsonable(a):
    a = np.asarray(a)
    if np.iscomplexobj(a):
        return {"re": a.real.tolist(), "im": a.imag.tolist()}
    return a.tolist()

def _ranges(text, flag, n_items, n_axes=None):
    """'a,b[,n];a,b[,n]' or, with no ';' (which a shell splits), 'a,b[,n],a,b[,n]' → a list of
    tuples (n an int)."""
    form = ",".join(["lo", "hi", "n"][:n_items])
    how = (f"write {flag} {form}" + (" (one axis: the loss is 1-D)" if flag == "--grid" else "") if n_axes == 1 else
           f"write {flag} {form},{form} (or quote it: {flag} '{form};{form}')")
    try:
        nums = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
        groups = [p.split(",") for p in text.split(";")] if ";" in text else None
    except ValueError:
        raise ValueError(f"{flag}: cannot read {text!r}; {how}") from None
    if groups is not None and any(len(g) != n_items for g in groups):
        raise ValueError(f"{flag}: each axis needs {n_items} comma-separated numbers, got {text!r}; {how}")
    if len(nums) % n_items or (n_axes is not None and len(nums) != n_items * n_axes):
        want = f"{n_items * n_axes}" if n_axes is not None else f"a multiple of {n_items}"
        raise ValueError(f"{flag}: expected {want} numbers ({n_items} per axis), got {len(nums)} in {text!r}; {how}")
    if not np.all(np.isfinite(nums)):
        raise ValueError(f"{flag}: every number must be finite, got {text!r}")
    parts = [nums[i:i + n_items] for i in range(0, len(nums), n_items)]
    if n_items == 3 and any(p[2] != int(p[2]) or p[2] < 1 for p in parts):
        raise ValueError(f"{flag}: the number of points n must be a positive integer, got {text!r}")
    return [tuple(p[:2]) + ((int(p[2]),) if n_items == 3 else ()) for p in parts]

def _fmt(v):
    """A point for people: real coordinates as 0.123457, complex ones as 0.1+0.2j, 6 digits."""
    v = np.asarray(v)
    if np.iscomplexobj(v) and np.all(v.imag == 0):
        v = v.real
    parts = [f"{c:.6g}" if not np.iscomplexobj(v) else f"{c.real:.6g}{c.imag:+.6g}j" for c in v.reshape(-1)]
    return "(" + ", ".join(parts) + ")"

def _method(name, lr, t_max=None):
    """The CLI's shorthand (--model NAME --lr H [--t-max T]) as a method value: the one place
    where the command line's names become values."""
    import flowcore as fc
    if name == "dal":
        return fc.method("dal")
    if fc.models.model(name).is_map:
        return fc.method(name, lr=lr)
    return fc.method(name, lr=lr, **({} if t_max is None else {"t_max": t_max}))
