"""The command line: JSON output checked against the library, errors with exit code 2."""
import json

import numpy as np
import pytest

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
    assert "pass --box=lo,hi for a Newton search" in capsys.readouterr().err


def test_bea_json(capsys):
    assert main(["bea", "--loss", "x**4/4", "--order", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["terms"] == [["-x**3"], ["-3*x**5/2"]]       # −g, −(h/2)·H g = −(1/2)(3x²)(x³)


def test_orbit_writes_png_and_json(tmp_path, capsys):
    png = tmp_path / "orbit.png"
    assert main(["orbit", "--loss", "(w**2 - 1)**2/4", "--lrs", "0.5,1.1,4", "--theta0", "0.5",
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
    # GD on (w² − 1)²/4 from 0.5 escapes for large h: those rates stay on the axis, shaded and named
    r = fa.orbit_diagram(fc.Loss.from_expr("(w**2 - 1)**2/4"), np.linspace(1.0, 3.0, 21), [0.5], transient=100, keep=10)
    escaped = r["lrs"][np.asarray(r["status"]) == fc.Status.ESCAPED]
    assert len(escaped) and escaped.max() == 3.0
    top = fa.plot.orbit_diagram(r).axes[0]
    assert "escaped: no orbit" in [t.get_text() for t in top.get_legend().get_texts()]
    assert top.get_xlim()[0] <= 1.0 and top.get_xlim()[1] >= 3.0


def test_typo_in_a_zoo_name_is_refused_with_a_suggestion(capsys):
    assert main(["critical", "--loss", "double_wel"]) == 2
    err = capsys.readouterr().err
    assert "did you mean double_well" in err
    assert main(["basins", "--loss", "rosenbrok", "--lr", "0.1", "--grid=-1,1,3,-1,1,3"]) == 2
    assert "rosenbrock" in capsys.readouterr().err


def test_grids_without_semicolons_and_clear_grid_errors(capsys):
    assert main(["basins", "--loss", "double_well", "--lr", "0.1", "--grid=-2,2,5,-2,2,5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shape"] == [5, 5]
    assert np.shape(out["label_of_start"]) == (5, 5) and len(out["axes"]) == 2      # redrawable
    assert main(["basins", "--loss", "double_well", "--lr", "0.1", "--grid=-2,2,5;-2,2,5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label_of_start"] == out["label_of_start"]
    assert main(["basins", "--loss", "double_well", "--lr", "0.1", "--grid=-2,2,5"]) == 2
    assert "--grid lo,hi,n,lo,hi,n" in capsys.readouterr().err


def test_a_leading_minus_needs_no_equals_sign(capsys):
    # argparse alone reads '-2,2,5,...' after --grid as an unknown option
    assert main(["basins", "--loss", "double_well", "--lr", "0.1", "--grid", "-2,2,5,-2,2,5", "--json"]) == 0
    spaced = json.loads(capsys.readouterr().out)
    assert main(["basins", "--loss", "double_well", "--lr", "0.1", "--grid=-2,2,5,-2,2,5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label_of_start"] == spaced["label_of_start"]
    assert spaced["axes"][0][0] == -2.0
    assert main(["track", "--loss", "(x*y-1)**2/2", "--lr", "0.1", "--theta0", "-.5,0.2", "--steps", "2",
                 "--flows", "ngf", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["theta0"] == [-0.5, 0.2]


def test_output_folder_is_created_before_the_work(tmp_path, capsys):
    png = tmp_path / "new" / "deeper" / "b.png"
    assert main(["basins", "--loss", "double_well", "--lr", "0.1", "--grid=-2,2,9,-2,2,9", "-o", str(png)]) == 0
    assert png.exists()
    head = capsys.readouterr().out.splitlines()[0]
    assert "label" in head and "share" in head                     # the table has a header
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["track", "--loss", "(x*y-1)**2/2", "--lr", "0.1", "--theta0=2.5,0.2",
                 "-o", str(blocked / "t.png")]) == 2


def test_version_and_broken_pipe(tmp_path):
    import subprocess
    import sys
    v = subprocess.run([sys.executable, "-m", "flowcore.cli", "--version"], capture_output=True, text=True,
                       cwd=tmp_path)             # outside the source tree: the installed package
    assert v.returncode == 0 and v.stdout.startswith("flowcore ")
    proc = subprocess.run(f"{sys.executable} -m flowcore.cli orbit --loss '(w**2-1)**2/4' --lrs 0.5,1.6,300 "
                          "--theta0 0.5 --json | head -c 10", shell=True, capture_output=True,
                          text=True, cwd=tmp_path)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_track_json_has_the_trajectories(capsys):
    assert main(["track", "--loss", "(x*y-1)**2/2", "--lr", "0.1", "--theta0=2.5,0.2", "--steps", "5",
                 "--flows", "ngf,pf", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert np.shape(out["gd"]) == (6, 2)
    assert np.shape(out["ngf"]["trajectory"]) == (6, 2)
    assert np.shape(out["pf"]["trajectory"]["re"]) == (6, 2)


def test_critical_cli_says_how_complete(capsys):
    assert main(["critical", "--loss", "(x**2+y-11)**2+(x+y**2-7)**2"]) == 0
    out = capsys.readouterr().out
    assert "9 critical point(s), all of them" in out
    assert main(["critical", "--loss", "exp(x)*cos(y) - x", "--box=-2,2,-4,4"]) == 0
    assert "not proven complete" in capsys.readouterr().out


def test_basins_lr_is_required_except_for_dal(capsys):
    assert main(["basins", "--loss", "double_well", "--grid=-2,2,5,-2,2,5"]) == 2
    assert "--model gd needs --lr" in capsys.readouterr().err
    assert main(["basins", "--loss", "double_well", "--model", "dal", "--lr", "0.1", "--grid=-2,2,5,-2,2,5"]) == 2
    assert "--lr is not used by --model dal" in capsys.readouterr().err
    assert main(["basins", "--loss", "double_well", "--model", "dal", "--grid=-2,2,5,-2,2,5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "dal"


def test_points_one_coordinate_each_on_a_line_and_errors_name_the_flag(capsys):
    assert main(["portrait", "--loss", "quartic_1d", "--lr", "0.2", "--box", "-2,2", "--starts", "-1.5,0.3",
                 "--steps", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["starts"] == [[-1.5], [0.3]]          # two starts on a line
    assert main(["eval", "--loss", "double_well", "--at", "0.5,1,2,0", "--json"]) == 0  # two points, no ';'
    assert json.loads(capsys.readouterr().out)["value"] == [1.5625, 9.0]                # (x² − 1)² + y²
    assert main(["portrait", "--loss", "double_well", "--lr", "0.2", "--box=-2,2,-1,1", "--starts", "1,2,3"]) == 2
    assert "--starts: each point needs 2 coordinates" in capsys.readouterr().err
    assert main(["eval", "--loss", "double_well", "--at", "0.5,oops"]) == 2
    assert "--at: cannot read" in capsys.readouterr().err


def test_portrait_prints_readable_points_and_vars_errors_name_the_flag(capsys):
    assert main(["portrait", "--loss", "double_well", "--lr", "0.2", "--flow", "pf", "--box=-2,2,-1.5,1.5",
                 "--starts=0.5,1.2", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "array" not in out and "np." not in out and "min        at (-1, 0)" in out
    assert main(["critical", "--loss", "x**2 + y**2 + z", "--vars", "x,y"]) == 2
    err = capsys.readouterr().err
    assert "--vars" in err and "vars=" not in err


@pytest.mark.parametrize("argv, says", [
    (["basins", "--loss", "double_well", "--lr", "0.1", "--grid=-2,2,100000,-2,2,100000"], "use fa.sweep"),
    (["basins", "--loss", "x**4", "--lr", "0.1", "--grid=-2,2,21,-2,2,21"], "--grid lo,hi,n (one axis"),
    (["sgd", "--example", "(w-x)**2", "--data", "x=1,2", "--lr", "0.1", "--theta0", "0", "--substeps", "0"],
     "--substeps: must be >= 1"),
    (["sgd", "--example", "(w-x)**2", "--data", "x=1,2", "--lr", "0.1", "--theta0", "0", "--runs", "0"],
     "--runs: must be >= 1"),
    (["sgd", "--example", "(w-x)**2", "--data-csv", "missing.csv", "--lr", "0.1", "--theta0", "0"],
     "--data-csv missing.csv: cannot read it"),
    (["compare", "--loss", "(x*y-1)**2/2", "--lr", "0.25", "--theta0=2.5,nan"], "every coordinate must be finite"),
    (["critical", "--loss", "double_well", "--lr", "0.3", "--beta", "nan"], "--beta: 'nan' is not finite"),
    (["tour", "-o", "/proc/nope"], "cannot create the folder /proc/nope"),
    (["sweep", "--loss", "quartic_1d", "--axis", "x=-1,1,5", "--lr", "0.1", "--processes", "0"],
     "--processes: must be >= 1"),
    (["eos", "--widths", "100000,100000", "--lr", "1"], "parameters"),
    (["bea", "--loss", "(x+y)**1000", "--order", "1"], "degree"),
    (["eval", "--loss", "10**10**10 + x", "--at", "1"], "binary digits"),
])
def test_bad_input_is_an_error_naming_it_not_a_traceback(argv, says, tmp_path):
    """Each of these was a traceback, a NaN result, or a silent fallback."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "flowcore.cli", *argv], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and says in r.stderr, r.stderr


def test_a_3d_basin_map_says_its_plane(capsys):
    assert main(["basins", "--loss", "x**2 + y**2 + z**2", "--lr", "0.1", "--grid=-2,2,11,-2,2,11"]) == 0
    out = capsys.readouterr().out
    assert "plane origin + x·u + y·v, origin (0, 0, 0), u = (1, 0, 0), v = (0, 1, 0) (the default" in out
    assert "Sbb = undefined" in out and "nan" not in out
