#!/usr/bin/env bash
# Everything a session lent a GPU runs, in one command (its device time is short): build the
# extensions in place with the machine's own Cython, numpy and scipy (nothing can be fetched
# there), run the GPU tests (`-m gpu`: flowcore's kernels on CUDA against the CPU), then the GPU
# benchmarks (bench_gpu.py: against hand CUDA kernels and diffrax). Logs, the device's name and
# gpu.json land in $OUT (the device tool's folder that comes back), else ./gpu-session.
#
#     bash benchmarks/gpu_session.sh [--quick]        (from the repository root)
set -uo pipefail
out=${OUT:-gpu-session}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{ nvidia-smi -L; $py -c "import cupy; print('cupy', cupy.__version__)"; } 2>&1 | tee "$out/device.txt"

# setup.py alone builds the extensions: pyproject.toml's metadata needs a newer setuptools than a
# machine's image may hold, and the build needs none of it
mv pyproject.toml pyproject.toml.off
$py setup.py -q build_ext --inplace >"$out/build.log" 2>&1
built=$?
mv pyproject.toml.off pyproject.toml
if [ $built -ne 0 ]; then tail -40 "$out/build.log"; exit 1; fi

$py -m pytest -m gpu -p no:cacheprovider -o addopts= -q -rs tests 2>&1 | tee "$out/pytest-gpu.log"
tests=${PIPESTATUS[0]}
(cd benchmarks && $py bench_gpu.py "$@") 2>&1 | tee "$out/bench_gpu.log"
bench=${PIPESTATUS[0]}
cp benchmarks/results/gpu.json "$out/" 2>/dev/null
echo "gpu_session: tests exit $tests, bench_gpu exit $bench"
[ $tests -eq 0 ] && [ $bench -eq 0 ]
