"""The tour of figures and the benchmarks."""
import json
import os
import sys

from flowcore.cli._common import COUNT, _output


def project_benchmarks(package_file):
    """The benchmarks/ folder of the checkout this flowcore was installed from (editable install),
    or None: only the project's own scripts run, never a folder of that name in the current
    directory. The checkout is recognised by its pyproject.toml naming the project flowcore."""
    from pathlib import Path
    root = Path(package_file).resolve().parents[1]
    try:
        named = 'name = "flowcore"' in (root / "pyproject.toml").read_text()
    except OSError:
        return None
    folder = root / "benchmarks"
    return folder if named and (folder / "_common.py").is_file() else None

def cmd_tour(args):
    """Render the tour (lessons' exercises, the paper's analyses, SGD's models) into a folder."""
    from flowcore.analysis import tour
    _output(None, folder=args.output)                     # created and writable, before any work
    only = args.only.split(",") if args.only else None
    workers = args.workers if args.workers is not None else max(1, min(4, os.cpu_count() or 1))
    entries = tour.run(args.output, quick=args.quick, only=only, progress=not args.json, workers=workers)
    if args.json:
        print(json.dumps({"output": args.output, "items": [
            {"name": f.__name__, "png": f"{f.__name__}.png", "json": f"{f.__name__}.json", "summary": s}
            for f, s in entries]}))
    else:
        for f, s in entries:
            print(f"{f.__name__:24s} {s}")
        print(f"\nindex: {args.output}/index.md")

def cmd_bench(args):
    """Run the benchmark scripts of a flowcore checkout (benchmarks/bench_*.py)."""
    import subprocess
    from pathlib import Path
    import flowcore
    folder = project_benchmarks(Path(flowcore.__file__))
    if folder is None:
        raise ValueError("the benchmarks ship with flowcore's source, not its wheel: install flowcore from a clone "
                         "with `pip install -e .` and run `flowcore bench` there (this flowcore is "
                         f"{Path(flowcore.__file__).parent})")
    print(f"running the benchmarks of the flowcore checkout at {folder.parent}", flush=True)
    scripts = sorted(folder.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if args.only in s.stem]
    # the GPU part (bench_gpu.py) runs with --device gpu, the rest without
    scripts = [s for s in scripts if (s.stem == "bench_gpu") == (args.device == "gpu")]
    rc = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        rc |= subprocess.run(cmd, cwd=folder).returncode
    return rc


def register(sub):
    """Add this group's commands to the subparsers ``sub``."""
    to = sub.add_parser("tour", help="render every figure of the tour, with JSON and an index")
    to.add_argument("-o", "--output", default="tour", help="output folder (default ./tour)")
    to.add_argument("--quick", action="store_true", help="smaller grids and runs (seconds)")
    to.add_argument("--only", help="comma-separated item names")
    to.add_argument("-j", "--workers", type=COUNT, help="render items in this many processes (default: the "
                    "number of CPUs, at most 4)")
    to.add_argument("--json", action="store_true", help="print the list of outputs as JSON")
    to.set_defaults(func=cmd_tour)
    b = sub.add_parser("bench", help="run the benchmarks (tables to stdout, JSON to benchmarks/results)")
    b.add_argument("--quick", action="store_true", help="small batches, few repeats")
    b.add_argument("--only", help="run only scripts whose name contains this (e.g. solve)")
    b.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu: the CPU benchmarks (default); gpu: the GPU part (says so and skips without a GPU)")
    b.set_defaults(func=cmd_bench)
