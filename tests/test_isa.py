"""Every SIMD path of the CPU kernels that this machine runs, against the NumPy reference.

The kernels pick AVX-512, AVX2+FMA or the portable baseline (what non-x86 wheels run) once per
process (csrc/cpu/isa.h), so each path gets its own subprocess with FUSEDRNN_ISA set, running the
CPU-vs-reference slice below: the recurrent rows, the packed GEMM, dropout masks and Adam.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fusedrnn

HERE = Path(__file__).resolve().parent
INFO = fusedrnn.build_info()
SUPPORTED = INFO.get("simd_supported", [])
LEVELS = ["baseline", "avx2+fma", "avx512"]
SLICE = ["test_cpu_vs_reference.py", "test_gradients.py", "test_matmul.py", "test_dropout_masks.py",
         "nn/test_adam_native.py"]

pytestmark = pytest.mark.skipif(not INFO["cpu"], reason="the compiled CPU module is not importable")


def _python(code, isa, **kwargs):
    env = {**os.environ, "FUSEDRNN_ISA": isa}
    env.pop("FUSEDRNN_BACKEND", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, **kwargs)


def test_without_the_variable_the_best_supported_path_runs():
    if os.environ.get("FUSEDRNN_ISA", "auto").strip().lower() != "auto":
        pytest.skip("FUSEDRNN_ISA is set for this run")
    assert SUPPORTED[0] == "baseline" and SUPPORTED == [level for level in LEVELS if level in SUPPORTED]
    assert INFO["simd_active"] == SUPPORTED[-1]


@pytest.mark.slow
@pytest.mark.parametrize("isa", LEVELS)
def test_kernels_match_the_reference_on_each_simd_path(isa):
    if isa not in SUPPORTED:
        pytest.skip(f"this CPU (or build) runs {', '.join(SUPPORTED)}, not {isa}")
    code = f"""
        import sys
        import fusedrnn, pytest
        active = fusedrnn.build_info()["simd_active"]
        assert active == {isa!r}, f"FUSEDRNN_ISA={isa} ran {{active}}"
        sys.exit(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *{SLICE!r}]))
    """
    result = _python(code, isa, cwd=HERE, timeout=600)
    assert result.returncode == 0, f"FUSEDRNN_ISA={isa}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.parametrize("value, message", [
    ("sse9", "FUSEDRNN_ISA: expected auto, baseline, avx2 or avx512, got 'sse9'"),
    ("avx512", "FUSEDRNN_ISA=avx512: this CPU (or this build) runs at most"),
])
def test_a_path_the_cpu_lacks_or_an_unknown_name_is_refused_at_import(value, message):
    if value == "avx512" and "avx512" in SUPPORTED:
        pytest.skip("this CPU runs AVX-512, so forcing it is not refused here")
    result = _python("import fusedrnn", value, timeout=120)
    assert result.returncode == 1
    assert f"ValueError: {message}" in result.stderr, result.stderr


@pytest.mark.parametrize("value, active", [("auto", None), (" Baseline ", "baseline"), ("avx2", "avx2+fma")])
def test_names_are_read_case_and_space_insensitively(value, active):
    active = active or SUPPORTED[-1]
    if active not in SUPPORTED:
        pytest.skip(f"this CPU does not run {active}")
    result = _python("import fusedrnn; print(fusedrnn.build_info()['simd_active'])", value, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == active
