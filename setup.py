"""Build the Cython extensions with -O3 and OpenMP, with flags probed on the compiler the build uses.

Probed (each kept only if that compiler accepts it): -fopenmp (else serial kernels),
-fcx-fortran-rules (GCC: complex multiply/divide without the C99 Annex G inf/nan recovery), and
-ffile-prefix-map (no absolute build paths in the binaries, so two builds of one commit in
different folders give the same extension modules).

Why setuptools and not meson-python (considered for the numpy/scipy convention): the build is four
Cython extensions with three probed flags, which this file states in 60 lines; meson-python would
add meson and ninja to the build requirements for editable rebuilds we do not need (CI builds once,
developers run `pip install -e .` after editing a .pyx), and the GPU kernels will be compiled at run
time by NVRTC, not by the build. Revisit when the kernels grow a per-problem C++ build step.
"""
import os
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
EXTENSIONS = ["flowcore.engine._loss", "flowcore.engine._field", "flowcore.engine._descend", "flowcore.engine._solve"]
OPENMP_TEST = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n"
PLAIN_TEST = "int main(void){return 0;}\n"


class ProbedBuildExt(build_ext):
    def build_extensions(self):
        # build isolation puts numpy (its headers) under a random temporary prefix: map it too
        site = os.path.dirname(os.path.dirname(np.__file__))
        flags = [f for f in ("-fcx-fortran-rules", f"-ffile-prefix-map={ROOT}=.",
                             f"-ffile-prefix-map={site}=site-packages") if self._accepts(f)]
        omp = []
        if not os.environ.get("FLOWCORE_NO_OPENMP"):
            omp = ["-fopenmp"] if self._accepts("-fopenmp", OPENMP_TEST) else []
            if not omp:
                print("flowcore: OpenMP not available, building serial kernels", file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = ["-O3", "-fno-math-errno", *flags, *omp]
            ext.extra_link_args = omp
        super().build_extensions()

    def _accepts(self, flag, source=PLAIN_TEST):
        """Does the build's own compiler compile and link a test program with ``flag``?"""
        from setuptools.errors import CompileError, LinkError
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(source)
            try:
                objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
                self.compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=[flag])
            except (CompileError, LinkError):
                return False
        return True


extensions = [
    Extension(name, [name.replace(".", "/") + ".pyx"],
              include_dirs=["flowcore/engine/include", np.get_include()],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")])
    for name in EXTENSIONS
]

setup(
    ext_modules=cythonize(extensions, language_level=3, compiler_directives={"cdivision": True}),
    cmdclass={"build_ext": ProbedBuildExt},
)
