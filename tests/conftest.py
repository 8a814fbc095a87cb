"""Collection order: the longest files first, so that with one worker per core (pytest-xdist,
a file per worker) none of them starts last and runs alone at the end. Each worker's thread pools
(OpenMP, OpenBLAS, XLA) get its share of the cores: with a pool per core in every worker, the
workers' spinning threads oversubscribed the cores (a JAX-heavy test took 67 s beside another
worker and 16 s alone)."""
import os
import shutil
import sys

if os.environ.get("PYTEST_XDIST_WORKER"):          # before numpy, JAX or flowcore load their pools
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _share)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                       f"intra_op_parallelism_threads={_share}")

import pytest

SLOW_FILES = ("test_tour.py", "test_krylov.py", "test_nn.py", "test_kernels.py", "test_readme.py",
              "test_sweep.py")


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
