#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one prepared run (see docs/runtime.md, "On a GPU").
#
# Expects: a python3 that holds torch with CUDA, and the wheels of torchlint's other
# dependencies in .whl/ (cp312; the device README says how to download them). Writes its logs
# and the two runtime reports to $OUT (default: ./device-out).
#
#   1. the CUDA-only tests (tests/test_runtime_cuda.py), which are skipped elsewhere;
#   2. the runtime checker over fixtures/ twice on the same machine: once as it runs there
#      (TL402 probed on the GPU) and once with the GPU hidden. scripts/compare_runtime.py lists
#      every finding whose verdict differs; a verdict may only differ where the GPU run is the
#      better-informed one (documented in its output);
#   3. the whole test suite (DEVICE_SUITE=0 leaves it out).
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-cache-dir --upgrade .whl/*.whl || exit 3
fi
$PY -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 3
nvidia-smi -L 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import torch, libcst, flake8; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.version.cuda)" \
    2>&1 | tee -a "$OUT/gpu.txt"

echo "== 1. CUDA tests"
$PY -m pytest -q -rs -p no:cacheprovider tests/test_runtime_cuda.py 2>&1 | tee "$OUT/cuda_tests.log"

echo "== 2. runtime verdicts: GPU visible vs hidden"
TORCHLINT_RUNTIME_GPU=1 $PY -m torchlint check --no-cache --exit-zero --runtime --format json \
    -o "$OUT/runtime_gpu.json" fixtures/ 2>&1 | tail -2
TORCHLINT_RUNTIME_GPU=0 CUDA_VISIBLE_DEVICES="" $PY -m torchlint check --no-cache --exit-zero --runtime \
    --format json -o "$OUT/runtime_cpu.json" fixtures/ 2>&1 | tail -2
$PY scripts/compare_runtime.py "$OUT/runtime_cpu.json" "$OUT/runtime_gpu.json" 2>&1 | tee "$OUT/compare.txt"

[ "${DEVICE_SUITE:-1}" = 0 ] && exit 0
echo "== 3. the whole suite"
XDG_CACHE_HOME=$(mktemp -d) $PY -m pytest -q -rs -p no:cacheprovider --timeout 300 \
    --junitxml "$OUT/junit.xml" 2>&1 | tee "$OUT/pytest.log" | tail -40
