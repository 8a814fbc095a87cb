"""benchmarks/bench_gpu.py run through the gpu fixture (the host emulation always; a real GPU
under -m gpu), at a few hundred starts."""
import json
from pathlib import Path


def test_gpu_benchmark_script_runs(gpu, tmp_path, monkeypatch):
    """benchmarks/bench_gpu.py at a few hundred starts: a GPU session is rare and short, so the
    script must not first break there; and flowcore's GPU results must match the script's hand
    CUDA kernels (independent code for the same work)."""
    bench = Path(__file__).parent.parent / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    import _common
    import bench_gpu
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    assert bench_gpu.main(["--starts", "400", "--repeats", "1"]) == 0
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    assert [r["problem"][:3] for r in rows] == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    agree = {r["problem"][:3]: r["max |GPU − reference|"] for r in rows}
    assert agree["(a)"] < 1e-6 and agree["(c)"] < 1e-12 and agree["(d)"] < 1e-6 and agree["(e)"] < 1e-12
