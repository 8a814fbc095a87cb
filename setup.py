"""Build the Cython extensions with -O3 and OpenMP (when the compiler supports it)."""
import os
import subprocess
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS = ["flowcore._loss", "flowcore._field", "flowcore._descend", "flowcore._solve"]


def openmp_flags():
    """['-fopenmp'] if a test program builds with it, else [] (serial fallback)."""
    if os.environ.get("FLOWCORE_NO_OPENMP"):
        return []
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        try:
            ok = subprocess.run([cc, "-fopenmp", src, "-o", os.path.join(tmp, "omp")],
                                capture_output=True).returncode == 0
        except OSError:
            ok = False
    if not ok:
        print("flowcore: OpenMP not available, building serial kernels", file=sys.stderr)
    return ["-fopenmp"] if ok else []


omp = openmp_flags()
extensions = [
    Extension(name, [name.replace(".", "/") + ".pyx"],
              include_dirs=["csrc", np.get_include()],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
              extra_compile_args=["-O3", "-fno-math-errno", "-fcx-fortran-rules", *omp],
              extra_link_args=omp)
    for name in EXTENSIONS
]

setup(
    ext_modules=cythonize(extensions, language_level=3,
                          compiler_directives={"cdivision": True}),
)
