"""The package's shape: folders are layers that import only inward, with no import circle
(imports inside functions counted too: none may dodge a circle), and ``import flowcore`` stays
quick."""
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "flowcore"
LAYERS = ["engine", "problems", "solvers", "analysis", "cli"]      # inner to outer
CYTHON_IMPORT = re.compile(r"^\s*(?:from\s+(flowcore[\w.]*)\s+c?import\s+([\w, ]+)|c?import\s+(flowcore[\w.]*))", re.M)


def _module(path):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module(p): p for p in ROOT.rglob("*") if p.suffix in (".py", ".pyx", ".pxd") and "cuda" not in p.parts}


def _targets(name, names, known):
    """The flowcore modules one import statement reaches: the module, or each imported submodule."""
    out = []
    for n in names:
        sub = f"{name}.{n}"
        out.append(sub if sub in known else name)
    return out or [name]


def _imports(path, known):
    text = path.read_text()
    found = set()
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowcore") and node.level == 0:
                found.update(_targets(node.module, [a.name for a in node.names], known))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("flowcore"))
    else:
        for m in CYTHON_IMPORT.finditer(text):
            if m.group(1):
                found.update(_targets(m.group(1), [n.strip().split(" as ")[0] for n in m.group(2).split(",")], known))
            else:
                found.add(m.group(3))
    # a module's .pyx and .pxd are one module
    return {t for t in found if t in known and t != _module(path)}


def _graph():
    known = _modules()
    graph = {}
    for name, path in known.items():
        graph.setdefault(name, set()).update(_imports(path, known))
    return graph


def _layer(module):
    """A module's layer; ``flowcore`` itself (the public API, re-exporting the three inner layers)
    counts as the solvers layer: analysis and the command line may import it, the others not."""
    parts = module.split(".")
    if module == "flowcore":
        return "solvers"
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_circle():
    graph = _graph()
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if m == "flowcore":
                continue                        # the package's own __init__ (the public API) is the top
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_layers_import_only_inward():
    bad = []
    for mod, deps in _graph().items():
        here = _layer(mod)
        if here is None:
            continue
        for d in deps:
            there = _layer(d)
            if there is not None and (LAYERS.index(there) > LAYERS.index(here) or
                                      (d == "flowcore" and LAYERS.index(here) <= LAYERS.index("solvers"))):
                bad.append(f"{mod} imports {d}")
    assert not bad, "\n".join(sorted(bad))


def _python(code, cwd):
    """Run ``code`` in a fresh interpreter outside the source tree (the installed package)."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_flowcore_is_quick(tmp_path):
    """``import flowcore`` (numpy and the extensions, no sympy, JAX or matplotlib): best of 5 under 0.3 s."""
    code = "import time; t = time.perf_counter(); import flowcore; print(time.perf_counter() - t)"
    best = min(float(_python(code, tmp_path)) for _ in range(5))
    assert best < 0.3, best
    heavy = _python("import sys, flowcore; print(sorted(m for m in ('sympy', 'jax', 'matplotlib', 'scipy', 'dask') "
                    "if m in sys.modules))", tmp_path)
    assert heavy == "[]", heavy
