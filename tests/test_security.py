"""A loss string never runs code; emitted C names are whitelisted; the compile cache loads only
what it compiled (planted, truncated, garbage or swapped libraries are rebuilt)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import flowcore as fc
from flowcore.engine import _codegen

ESCAPES = [
    "sympify(\"__import__('os').system('touch {p}')\") + x",
    "S(\"__import__('os').system('touch {p}')\") + x",
    "parse_expr(\"__import__('os').system('touch {p}')\") + x",
    "x.diff.__func__.__globals__['__builtins__']['__import__']('os').system('touch {p}')",
    "exp#\n(__import__('os').system('touch {p}'))",
    "__import__('os').system('touch {p}')",
    "(lambda: __import__('os').system('touch {p}'))()",
    "[__import__('os').system('touch {p}') for _ in (1,)][0] + x",
    "getattr(x, 'evalf')",
    "eval(\"__import__('os').system('touch {p}')\")",
    "x if __import__('os').system('touch {p}') else x",
    "exp(x).__class__.__mro__",
    "Symbol('x')",
    "x; __import__('os').system('touch {p}')",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_expression_text_never_runs_code(template, tmp_path):
    target = tmp_path / "pwned"
    text = template.format(p=target)
    for make in (lambda t: fc.Loss.from_expr(t), lambda t: fc.Field.from_expr([t, "x"], vars=("x", "y")),
                 lambda t: __import__("flowcore.analysis", fromlist=["x"]).modified_equation(t, order=1)):
        with pytest.raises((fc.ExpressionError, ValueError)):
            make(text)
    assert not target.exists()


def test_cli_expression_never_runs_code(tmp_path):
    target = tmp_path / "pwned"
    text = f"sympify(\"__import__('os').system('touch {target}')\") + x"
    for cmd in (["eval", "--loss", text, "--theta", "1"], ["bea", "--loss", text, "--order", "1"],
                ["critical", "--loss", text]):
        proc = subprocess.run([sys.executable, "-m", "flowcore.cli", *cmd], capture_output=True, text=True,
                              cwd=tmp_path)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert not target.exists()


def test_function_names_reach_c_only_from_the_whitelist(tmp_path):
    evil = type('(system("touch p"),exp)', (sp.exp,), {})
    x = sp.Symbol("x")
    with pytest.raises(fc.ExpressionError, match="not supported"):
        fc.Loss.from_expr(evil(x) + x, vars=("x",))
    # and the printer maps classes to C names, never __name__
    assert _codegen._PRINTER.doprint(sp.exp(sp.Symbol("x_0"))) == "exp(x_0)"


EVIL_NAME = '({{ extern int system(const char*); system("touch {p}"); 0.0; }})'


def test_symbol_names_never_reach_c(tmp_path):
    """Three distinct Symbols sharing one name (other assumptions) used to leave two of them
    un-renamed, printed into C by name — which ran the name as code (and gave 2 for 3). Two symbols
    with one name are refused; the printer prints generated identifiers only."""
    target = tmp_path / "pwned"
    name = EVIL_NAME.format(p=target)
    a, b, c = sp.Symbol(name), sp.Symbol(name, positive=True), sp.Symbol(name, integer=True)
    for make in (lambda: fc.Loss.from_expr(a + b + c), lambda: fc.Field.from_expr([a + b, c]),
                 lambda: fc.solve(fc.Field.from_expr([a + b, c]), [[1.0]], t_span=(0, 1))):
        with pytest.raises(fc.ExpressionError, match="share the name"):
            make()
    # one symbol with such a name is a variable like any other: renamed, never printed
    loss = fc.Loss.from_expr(a**2 + 1)
    assert loss.value([[2.0]])[0] == 5.0
    with pytest.raises(fc.ExpressionError, match="not renamed"):
        _codegen._PRINTER.doprint(a + 1)
    assert not target.exists()


def test_a_tableau_name_never_reaches_c(tmp_path):
    from flowcore.engine.tableaux import Tableau
    target = tmp_path / "pwned"
    evil = f'euler */ __attribute__((constructor)) static void f(void) {{ system("touch {target}"); }} /* '
    tab = Tableau(((0,),), (1,), name=evil, order=1)
    sol = fc.solve(fc.Field.from_expr(["-x"]), [[1.0]], t_span=(0, 1), method=fc.FixedStep(tab, 0.5))
    assert sol.y[0, -1, 0] == 0.25 and not target.exists()


def test_big_integers_and_rationals_are_exact_doubles():
    assert fc.Loss.from_expr("10**20*x**2").value([[1.0]])[0] == 1e20
    assert fc.Loss.from_expr("x*(2**64 + 1)").value([[1.0]])[0] == float(2**64 + 1)
    assert fc.Loss.from_expr("x*(3**40)/(3**39)").value([[2.0]])[0] == 6.0
    with pytest.raises(fc.ExpressionError, match="float64"):
        fc.Loss.from_expr("x*10**400")


@pytest.mark.parametrize("text, says", [
    ("x.y", "attribute"), ("x/0", "division by zero"), ("Sum(x, (x, 1, 3))", "Sum"),
    ("Integral(x, x)", "Integral"), ("x if x else y", "conditional"), ("2j*x", "imaginary"),
    ("'x'", "str"), ("x[0]", "subscript"),
])
def test_unclear_inputs_get_clear_errors(text, says):
    with pytest.raises(fc.ExpressionError, match=says):
        fc.Loss.from_expr(text)


def test_sympy_objects_outside_the_grammar_are_refused():
    x = sp.Symbol("x")
    for bad, says in ((sp.EulerGamma * x, "EulerGamma"), (sp.I * x, "imaginary unit"),
                      (sp.Integral(x**2, x), "Integral"), (sp.zoo * x, "not finite")):
        with pytest.raises(fc.ExpressionError, match=says):
            fc.Loss.from_expr(bad, vars=("x",))
    assert fc.Loss.from_expr(sp.E * x**2, vars=("x",)).value([[1.0]])[0] == pytest.approx(np.e, rel=1e-15)


def test_compile_size_and_bea_order_are_bounded():
    big = " + ".join(f"sin({k}*x + y)*cos(x - {k}*y)" for k in range(1, 200))
    with pytest.raises(fc.ExpressionError, match="max_ops"):
        fc.Loss.from_expr(big)
    with pytest.raises(ValueError, match="order"):
        fc.flows.bea(fc.losses.double_well(), 0.1, order=10**8)
    from flowcore import analysis as fa
    with pytest.raises(ValueError, match="order"):
        fa.modified_equation("x**4/4", order=100)


def _fresh(monkeypatch, path):
    monkeypatch.setenv("FLOWCORE_CACHE", str(path))
    monkeypatch.setattr(_codegen, "_LOADED", {})


def _value(cache, expr, point):
    """E(point) in a new process using ``cache`` (a loaded library must not be rewritten in place)."""
    code = f"import flowcore as fc; print(fc.Loss.from_expr({expr!r}).value([{point!r}])[0])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cache.parent,
                          env={**os.environ, "FLOWCORE_CACHE": str(cache)})   # outside the source tree
    return proc.returncode, proc.stdout.strip(), proc.stderr


def test_cache_is_private_and_rebuilds_bad_entries(tmp_path):
    cache, other = tmp_path / "cache", tmp_path / "other"
    expr = "x**2 + 3*y"
    assert _value(cache, expr, [1.0, 1.0])[:2] == (0, "4.0")
    assert (cache.stat().st_mode & 0o777) == 0o700
    (so,) = cache.glob("fc_*.so")
    # truncated, garbage: detected, removed, rebuilt (no SIGBUS, no bare OSError)
    for damage in (lambda b: b[: len(b) // 3], lambda b: b"\x7fELF" + os.urandom(4000)):
        so.write_bytes(damage(so.read_bytes()))
        assert _value(cache, expr, [2.0, 1.0])[:2] == (0, "7.0")
    # a valid library of another expression planted under this key: not used
    assert _value(other, "x**2 + y", [1.0, 1.0])[:2] == (0, "2.0")
    (planted,) = other.glob("fc_*.so")
    so.write_bytes(planted.read_bytes())
    assert _value(cache, expr, [1.0, 1.0])[:2] == (0, "4.0")          # not 2.0
    # library and a matching digest swapped in together: the key the library carries is checked
    so.write_bytes(planted.read_bytes())
    digest = planted.with_suffix(".sha256").read_text().split()[0]
    so.with_suffix(".sha256").write_text(f"{digest} {so.stem[3:]}\n")
    rc, out, err = _value(cache, expr, [1.0, 1.0])
    assert rc != 0 and "does not belong" in err
    # a killed compile's temporary folder is cleaned up by a later compile
    stale = cache / "tmp-killed"
    stale.mkdir()
    os.utime(stale, (0, 0))
    assert _value(cache, "x**2 + 11*y", [1.0, 1.0])[:2] == (0, "12.0")
    assert not stale.exists()


def test_read_only_cache_falls_back_to_a_private_one(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    _fresh(monkeypatch, ro)
    monkeypatch.setattr(_codegen, "_PRIVATE_DIR", None)
    if os.getuid() == 0:                 # root writes anywhere: let access() answer as for a user
        real = os.access
        monkeypatch.setattr(_codegen.os, "access", lambda p, m: False if str(p) == str(ro) else real(p, m))
    with pytest.warns(RuntimeWarning, match="not writable"):
        assert fc.Loss.from_expr("x**2 + 5*y").value([[1.0, 1.0]])[0] == 6.0
    assert not list(ro.glob("fc_*"))


def test_group_writable_cache_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    _fresh(monkeypatch, shared)
    monkeypatch.setattr(_codegen, "_PRIVATE_DIR", None)
    with pytest.warns(RuntimeWarning, match="writable by others"):
        assert fc.Loss.from_expr("x**2 + 7*y").value([[1.0, 1.0]])[0] == 8.0
    assert not list(shared.glob("fc_*.so"))


def test_bench_runs_only_the_projects_own_scripts(tmp_path):
    """A folder named benchmarks/ in the directory you stand in is not run: `flowcore bench` finds
    the scripts of the checkout flowcore was installed from, and says which."""
    from pathlib import Path
    from flowcore.cli import project_benchmarks
    target = tmp_path / "pwned"
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "_common.py").write_text("")
    (tmp_path / "benchmarks" / "bench_x.py").write_text(f"open({str(target)!r}, 'w')")
    proc = subprocess.run([sys.executable, "-m", "flowcore.cli", "bench", "--only", "bench_x"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert not target.exists()
    ours = project_benchmarks(Path(fc.__file__))
    assert ours is None or (ours / "bench_basins.py").exists()
    if ours is None:                          # installed from a wheel: says so, exit 2
        assert proc.returncode == 2 and "pip install -e" in proc.stderr
    else:
        assert str(ours.parent) in proc.stdout
    assert project_benchmarks(tmp_path / "flowcore" / "__init__.py") is None


@pytest.mark.parametrize("text", ["10**10**10 + x", "9**9**9**9 + x", "x*(2**-100000)", "2**(2**64)*x"])
def test_exponent_towers_are_refused_before_they_are_evaluated(text):
    import time
    t0 = time.perf_counter()
    with pytest.raises(fc.ExpressionError, match="binary digits"):
        fc.Loss.from_expr(text)
    assert time.perf_counter() - t0 < 2.0           # each ran past 60 s (or a MemoryError) before


def test_degree_bombs_are_refused_in_bea_and_critical():
    import time
    from flowcore import analysis as fa
    for text in ("(x+y)**1000", "x**(10**10)"):
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match="degree"):
            fa.modified_equation(text, order=1)
        with pytest.raises(ValueError, match="degree .* no Gröbner basis"):
            fa.critical_points(fc.Loss.from_expr(text))
        assert time.perf_counter() - t0 < 5.0
    assert fa.critical_points(fc.Loss.from_expr("(x**2 - 1)**2 + y**2")).complete


def test_long_and_deep_text_gets_a_clear_error():
    with pytest.raises(fc.ExpressionError, match="characters long"):
        fc.Loss.from_expr("x + " * 20_000 + "x")
    with pytest.raises(fc.ExpressionError, match="nested too deeply"):
        fc.Loss.from_expr("+".join(["x"] * 3000))
    assert fc.Loss.from_expr("+".join(["x"] * 500)).value([[1.0]])[0] == 500.0


def test_numbers_outside_float64_are_refused_not_rounded():
    """1e400 became inf and 1e-400 became 0 silently (as a sympy Float, or a literal in text)."""
    x = sp.Symbol("x")
    for bad in (sp.Float("1e400") * x**2, sp.Float("1e-400") * x**2 + x, "1e-400*x + x", "1e400*x"):
        with pytest.raises(fc.ExpressionError, match="does not fit in float64"):
            fc.Loss.from_expr(bad)
    assert fc.Loss.from_expr("0.0*x + 5e-324*x + x").value([[1.0]])[0] == 1.0


@pytest.mark.parametrize("text", ["ｅｘｐ(x)", "θ**2", "𝐱**2", "x**2 + ｙ"])
def test_expression_text_is_ascii(text):
    """One rule: text is ASCII (Python folds full-width and mathematical letters to ASCII, which
    made ｅｘｐ(x) compile as exp(x) while θ was refused)."""
    with pytest.raises(fc.ExpressionError, match="ASCII"):
        fc.Loss.from_expr(text)


def test_killed_compiles_leave_no_temporaries(tmp_path, monkeypatch):
    """A compile's temporary folder names its process: one whose process is gone is removed at the
    next compile, not an hour later; one of a live process stays."""
    monkeypatch.setenv("FLOWCORE_CACHE", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f"tmp-{dead}-abc").mkdir()
    (tmp_path / f"tmp-{os.getpid()}-live").mkdir()
    fc.Loss.from_expr("x**3 + 17.25*x")              # a new expression: a compile
    assert not (tmp_path / f"tmp-{dead}-abc").exists() and (tmp_path / f"tmp-{os.getpid()}-live").exists()
