"""The command line: JSON output checked against the library, errors with exit code 2."""
import json

import numpy as np

import flowcore as fc
from flowcore.cli import main


def test_eval_json(capsys):
    assert main(["eval", "--loss", "x**3*y + exp(y)", "--at", "0.5,1;1+0.5j,0", "--v", "1,0;0,1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    loss = fc.Loss.from_expr("x**3*y + exp(y)")
    th = np.array([[0.5, 1.0], [1 + 0.5j, 0.0]])
    grad = np.array(out["grad"]["re"]) + 1j * np.array(out["grad"]["im"])
    np.testing.assert_allclose(grad, loss.grad(th), rtol=1e-15)
    third = np.array(out["third"]["re"]) + 1j * np.array(out["third"]["im"])
    np.testing.assert_allclose(third, loss.third(th, np.array([[1, 0], [0, 1]])), rtol=1e-15)
    assert out["vars"] == ["x", "y"]


def test_eval_zoo_and_errors(capsys):
    assert main(["eval", "--loss", "double_well", "--at", "0.5,1"]) == 0
    assert "E = 1.5625" in capsys.readouterr().out
    assert main(["eval", "--loss", "abs(x)", "--at", "1"]) == 2
    assert "abs" in capsys.readouterr().err


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    text = capsys.readouterr().out
    assert "eval" in text and "bench" in text


def test_critical_json(capsys):
    assert main(["critical", "--loss", "double_well", "--lr", "0.3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    kinds = sorted((tuple(p["point"]), p["kind"]) for p in out["points"])
    assert kinds == [((-1.0, 0.0), "min"), ((0.0, 0.0), "saddle"), ((1.0, 0.0), "min")]
    mn = [p for p in out["points"] if p["kind"] == "min"][0]
    assert mn["models"]["gd"] == "repelling" and mn["models"]["ngf"] == "attractive"   # hλ = 2.4
    assert mn["stable_lr"]["gd"] == [[0.0, 0.25]]
    assert main(["critical", "--loss", "exp(x) - x", "--json"]) == 2      # needs --box
    assert "box" in capsys.readouterr().err


def test_bea_json(capsys):
    assert main(["bea", "--loss", "x**4/4", "--order", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["terms"] == [["-x**3"], ["-3*x**5/2"]]       # −g, −(h/2)·H g = −(1/2)(3x²)(x³)


def test_orbit_writes_png_and_json(tmp_path, capsys):
    png = tmp_path / "orbit.png"
    assert main(["orbit", "--loss", "(w**2 - 1)**2/4", "--lrs", "0.5,1.1", "--n", "4", "--theta0", "0.5",
                 "--transient", "500", "--keep", "20", "-o", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"loss", "lrs", "lyapunov", "status", "period", "orbits"}   # enough to redraw
    assert np.shape(out["orbits"]) == (4, 20, 1)
    assert out["period"] == [1, 1, 1, 2]                        # h = 0.5, 0.7, 0.9 fixed; 1.1 period 2
    from PIL import Image
    with Image.open(png) as im:
        assert im.size[0] > 600 and im.size[1] > 500


def test_orbit_figure_structure():
    from flowcore import analysis as fa
    import flowcore as fc
    r = fa.orbit_diagram(fc.Loss.from_expr("(w**2 - 1)**2/4"), [0.5, 1.1], [0.5], transient=100, keep=10)
    fig = fa.plot.orbit_diagram(r)
    top, bottom = fig.axes
    assert top.get_ylabel() and bottom.get_xlabel() == "learning rate h" and top.get_title()
    assert bottom.get_legend() is not None
