#!/usr/bin/env bash
# The wheels that gpu_run.sh needs on a GPU machine without downloads: run it here (PyPI reachable),
# then carry WHEELDIR to the GPU machine and run `bash benchmarks/gpu_run.sh WHEELDIR` there.
#
#   bash benchmarks/gpu_wheels.sh WHEELDIR [PYTHON_VERSION]
#
# PYTHON_VERSION is the GPU machine's Python (default 3.12). The machine already has numpy, scipy,
# torch, cupy, pybind11, scikit-build-core, regex, click, joblib, tqdm and wrapt; these are the rest:
# scipy-openblas32 (the CPU module links it), and for the ADE tagger's GPU test gensim, smart_open,
# nltk, defusedxml and seqeval (no wheel on PyPI: built here from its sdist, pure Python).
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: bash benchmarks/gpu_wheels.sh WHEELDIR [PYTHON_VERSION]" >&2
    exit 2
fi
dir=$1
python_version=${2:-3.12}
mkdir -p "$dir"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
# The versions pyproject.toml's extras admit; --no-deps: the machine has the rest.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
    "${platforms[@]}" -d "$dir" scipy-openblas32 "gensim>=4.3" smart_open "nltk>=3.8" defusedxml
python3 -m pip wheel -q --no-deps -w "$dir" "seqeval>=1.2"
ls "$dir"
