#!/usr/bin/env bash
# The whole GPU session in one call, for the GPU machine (no downloads there): install the wheels we
# bring, build fusedrnn from this working tree with its CUDA module, run the GPU tests, then the
# benchmark against cuDNN. Everything it writes goes under $OUT (default /tmp/fusedrnn-gpu):
#   env.txt            the card, driver, Python, torch/cuDNN, CuPy, nvcc
#   build.log          pip's build output (CMake, nvcc)
#   pytest-gpu.log     python -m pytest -m gpu on tests/test_cuda*.py, tests/ade/test_tagger.py and
#                      tests/pytorch/test_torch_cu*.py
#   gpu_vs_cudnn.md    the benchmark's table (and bench.log, its output)
#   YYYY-MM-DD-torch-dropin.md   fusedrnn.torch against torch.nn on the GPU (and torch_dropin.log)
#
#   bash benchmarks/gpu_run.sh WHEELDIR [LIMIT_SECONDS]
#
# WHEELDIR holds the wheels the machine lacks: scipy-openblas32 (the CPU module links it), and for the
# ADE tagger's GPU test gensim, smart_open, nltk, defusedxml and seqeval (a wheel built from its sdist);
# each is installed with --no-deps. benchmarks/gpu_wheels.sh gathers them where PyPI is reachable. LIMIT_SECONDS (default 540) bounds the whole run: each step gets
# what is left (the tests at most 240 s), so the benchmark may be cut short, never the call.
# Exit status: the first failing step's (build 10, tests 20, benchmark 30), 0 when all pass.
set -uo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: bash benchmarks/gpu_run.sh WHEELDIR [LIMIT_SECONDS]  (WHEELDIR: a folder of .whl files)" >&2
    exit 2
fi
WHEELDIR=$(cd "$1" && pwd)
LIMIT=${2:-540}
OUT=${OUT:-/tmp/fusedrnn-gpu}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
deadline=$((SECONDS + LIMIT))
# Some GPU images have only python3 on the PATH; $PYTHON overrides.
PY=${PYTHON:-$(command -v python || command -v python3)}
export PYTHONUNBUFFERED=1
left() { echo $((deadline - SECONDS > 1 ? deadline - SECONDS : 1)); }
status=0
fail() { [ "$status" -eq 0 ] && status=$1; echo "gpu_run: $2" | tee -a "$OUT/env.txt" >&2; }

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
    "$PY" --version
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" || true
    "$PY" -c "import cupy; print('cupy', cupy.__version__)" || true
    nvcc --version | tail -n 2 || echo "no nvcc on PATH"
} > "$OUT/env.txt" 2>&1

shopt -s nullglob
wheels=("$WHEELDIR"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
    "$PY" -m pip install --no-index --no-deps --find-links "$WHEELDIR" "${wheels[@]}" > "$OUT/build.log" 2>&1 \
        || fail 10 "installing the wheels of $WHEELDIR failed (see build.log)"
fi

# The package itself, --no-deps: what it needs that the machine lacks came from WHEELDIR.
if [ "$status" -eq 0 ]; then
    start=$SECONDS
    FUSEDRNN_CUDA=ON timeout "$(left)" "$PY" -m pip install --no-index --no-deps --no-build-isolation -v . \
        >> "$OUT/build.log" 2>&1 || fail 10 "building fusedrnn with FUSEDRNN_CUDA=ON failed (see build.log)"
    echo "build: $((SECONDS - start)) s" >> "$OUT/env.txt"
    (cd /tmp && "$PY" -c "import fusedrnn, json; print(json.dumps(fusedrnn.build_info()))") >> "$OUT/env.txt" 2>&1
fi

if [ "$status" -eq 0 ]; then
    tests_limit=$(( $(left) < 240 ? $(left) : 240 ))
    timeout "$tests_limit" "$PY" -m pytest -q -rfEs --tb=short -p no:cacheprovider -m gpu tests/test_cuda.py tests/test_cuda_missing.py tests/ade/test_tagger.py tests/pytorch/test_torch_cuda.py tests/pytorch/test_torch_cupy.py \
        > "$OUT/pytest-gpu.log" 2>&1 || fail 20 "GPU tests failed or timed out (see pytest-gpu.log)"
    tail -n 3 "$OUT/pytest-gpu.log"
    # the benchmark runs even after failed tests: its own checks say which shapes are wrong
    timeout "$(left)" "$PY" benchmarks/gpu_vs_cudnn.py --out "$OUT/gpu_vs_cudnn.md" > "$OUT/bench.log" 2>&1 \
        || fail 30 "the benchmark failed, a check failed, or it ran out of time (see bench.log)"
    cat "$OUT/gpu_vs_cudnn.md" 2>/dev/null || tail -n 20 "$OUT/bench.log"
    # fusedrnn.torch against torch.nn with cuDNN: training steps and inference on the GPU
    timeout "$(left)" "$PY" benchmarks/torch_dropin.py --device cuda --save "$OUT" > "$OUT/torch_dropin.log" 2>&1 \
        || fail 30 "the drop-in benchmark failed, a check failed, or it ran out of time (see torch_dropin.log)"
    tail -n 18 "$OUT/torch_dropin.log"
fi
echo "gpu_run: status $status after $SECONDS s; files in $OUT"
exit "$status"
