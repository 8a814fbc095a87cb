"""Collection order: the longest files first, so that with one worker per core (pytest-xdist,
a file per worker) none of them starts last and runs alone at the end."""
import shutil
import sys

import pytest

SLOW_FILES = ("test_tour.py", "test_readme.py", "test_sweep.py", "test_nn.py", "test_kernels.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)
    items.sort(key=rank)                 # stable: the order within and among the other files is kept


@pytest.fixture(params=["host", pytest.param("cuda", marks=pytest.mark.gpu)])
def gpu(request, monkeypatch):
    """Where device='gpu' runs: 'cuda' on a real GPU (skipped without one); 'host' compiles the
    same CUDA source with the host C++ compiler and runs its threads one by one
    (tests/cuda_on_host), so that CI, which has no GPU, runs the GPU path end to end."""
    from flowcore.engine import _kernels
    if request.param == "cuda":
        if not _kernels.gpu_usable(None):
            pytest.skip("no CUDA GPU with CuPy")
        return "cuda"
    if shutil.which("g++") is None:
        pytest.skip("no g++ to compile the CUDA source on the host")
    import cuda_on_host
    monkeypatch.setitem(sys.modules, "cupy", cuda_on_host.module())
    monkeypatch.setattr(_kernels, "_GPU", {})
    monkeypatch.setattr(_kernels, "_MODULES", {})
    return "host"
