"""flowcore's GPU path run on the host: a stand-in for the part of CuPy that flowcore uses.

CI has no GPU, so without this the CUDA branches of the kernel headers (the ``__global__``
entry points, ``cuda::std::complex``, ``__umul64hi``) and the Python side of every launch
(argument order and dtypes, device buffers, grid size, copies back) would run for the first
time on someone's GPU. Here ``RawModule`` compiles the very source NVRTC gets with the host
C++ compiler in CUDA mode (``-D__CUDACC_RTC__`` and ``cuda_on_host.h``), and a launch runs
every (block, thread) of the grid once, blocks in a shuffled order and threads backwards, so a
result that depends on the order threads run in shows up as a mismatch with the CPU kernels.

Device arrays are deliberately strict: they only know ``.get()``, shape, dtype, size and
transposed views (which no kernel may take, as a CuPy kernel would misread one), and
refuse to turn into numpy arrays implicitly (as CuPy does), so a host array passed where a
device one belongs, or a device array used as a host one, fails here as it would on a GPU.
"""
import ctypes
import importlib.machinery
import hashlib
import os
import subprocess
import tempfile
import types
from pathlib import Path

import numpy as np

INCLUDE = Path(__file__).parent / "include"
CACHE = Path(tempfile.gettempdir()) / f"flowcore-cuda-on-host-{os.getuid()}"


class DeviceArray:
    """A 'GPU' buffer: numpy memory behind CuPy's rules (no implicit conversion to host)."""

    def __init__(self, host, view=False):
        self._host = host if view else np.ascontiguousarray(host)

    shape = property(lambda self: self._host.shape)
    dtype = property(lambda self: self._host.dtype)
    size = property(lambda self: self._host.size)
    T = property(lambda self: self.transpose())

    def transpose(self, *axes):
        """A strided view, as CuPy's: a kernel cannot take it (see _c_arg)."""
        return DeviceArray(self._host.transpose(*axes), view=True)

    def get(self):
        return self._host.copy()

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")


def _c_arg(a):
    if isinstance(a, DeviceArray):
        if not a._host.flags.c_contiguous:      # a kernel would read it as if it were contiguous
            raise ValueError("a strided device array passed to a kernel")
        return ctypes.c_void_p(a._host.ctypes.data)
    if isinstance(a, (np.int64, np.uint64)):
        return ctypes.c_int64(int(a))
    if isinstance(a, np.int32):
        return ctypes.c_int(int(a))
    if isinstance(a, (np.float64, float)):
        return ctypes.c_double(float(a))
    raise TypeError(f"Unsupported type {type(a)}")     # CuPy refuses host arrays and Python ints alike


class Function:
    def __init__(self, lib, name):
        self._index, self._kernel = lib.fc_emu_index, getattr(lib, name)
        self._kernel.restype = None

    def __call__(self, grid, block, args):
        (gx,), (bx,) = tuple(grid), tuple(block)      # flowcore launches 1-D grids only
        c_args = [_c_arg(a) for a in args]
        for b in np.random.default_rng(gx).permutation(gx):
            for t in reversed(range(bx)):
                self._index(int(b), bx, t)
                self._kernel(*c_args)


class RawModule:
    """Compile ``code`` as CUDA C++ on the host (cached by its text and options)."""

    def __init__(self, code, options=()):
        flags = ["-x", "c++", "-std=c++17", "-O1", "-shared", "-fPIC", "-D__CUDACC_RTC__",
                 "-include", str(INCLUDE / "cuda_on_host.h"), f"-I{INCLUDE}",
                 *(o for o in options if o.startswith("-I"))]
        key = hashlib.sha256("\0".join([code, *flags]).encode()).hexdigest()[:24]
        lib = CACHE / f"{key}.so"
        if not lib.exists():
            CACHE.mkdir(exist_ok=True)
            src = CACHE / f"{key}.cu"
            src.write_text(code)
            tmp = CACHE / f"{key}.{os.getpid()}.so"
            done = subprocess.run(["g++", *flags, str(src), "-o", str(tmp)], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"the CUDA source does not compile as host C++:\n{done.stderr[-4000:]}")
            tmp.replace(lib)
        self._lib = ctypes.CDLL(str(lib))
        self._lib.fc_emu_index.argtypes = [ctypes.c_uint] * 3

    def get_function(self, name):
        return Function(self._lib, name)


def module():
    """A module object standing in for ``cupy`` (install it as sys.modules['cupy'])."""
    cp = types.ModuleType("cupy")
    cp.__spec__ = importlib.machinery.ModuleSpec("cupy", None)     # found, ships no headers
    cp.int32, cp.int64, cp.float64, cp.complex128 = np.int32, np.int64, np.float64, np.complex128
    cp.asarray = lambda a, dtype=None: a if isinstance(a, DeviceArray) else DeviceArray(np.array(a, dtype=dtype))
    cp.ascontiguousarray = lambda a: DeviceArray(np.ascontiguousarray(a._host))
    cp.full = lambda shape, fill, dtype=None: DeviceArray(np.full(shape, fill, dtype=dtype))
    cp.zeros = lambda shape, dtype=np.float64: DeviceArray(np.zeros(shape, dtype=dtype))
    cp.empty = lambda shape, dtype=np.float64: DeviceArray(np.full(shape, np.nan, dtype=dtype))
    cp.RawModule = RawModule
    cp.cuda = types.SimpleNamespace(   # what flowcore and benchmarks/bench_gpu.py ask of the device
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1,
                                      getDeviceProperties=lambda i: {"name": b"cuda_on_host"}),
        Device=lambda i=0: types.SimpleNamespace(synchronize=lambda: None))
    return cp
