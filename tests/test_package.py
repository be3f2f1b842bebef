"""The package surface: build_info, thread control, and the NumPy fallback when _core is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

import fusedrnn

EXPECTED_KEYS = {"cpu", "cuda", "blas", "blas_version", "compiler", "simd", "simd_active", "backend", "num_threads"}


def test_build_info_describes_the_compiled_cpu_module(monkeypatch):
    monkeypatch.delenv("FUSEDRNN_BACKEND", raising=False)
    info = fusedrnn.build_info()
    assert EXPECTED_KEYS <= set(info), EXPECTED_KEYS - set(info)
    assert info["cpu"] is True
    assert isinstance(info["cuda"], bool)
    assert info["backend"] == "cpu"
    assert info["num_threads"] == fusedrnn.get_num_threads() >= 1
    for key in ("blas", "blas_version", "compiler", "simd", "simd_active"):
        assert isinstance(info[key], str) and info[key], key
    # A stale compiled module next to newer Python code shows up as a version mismatch.
    assert info.get("version", fusedrnn.__version__) == fusedrnn.__version__


def test_build_info_reports_the_forced_backend(monkeypatch):
    monkeypatch.setenv("FUSEDRNN_BACKEND", "numpy")
    assert fusedrnn.build_info()["backend"] == "numpy"
    monkeypatch.setenv("FUSEDRNN_BACKEND", "cpu")
    assert fusedrnn.build_info()["backend"] == "cpu"


def test_thread_count_round_trips(restore_threads):
    for n in (1, 2, 3, 1):
        fusedrnn.set_num_threads(n)
        assert fusedrnn.get_num_threads() == n
        assert fusedrnn.build_info()["num_threads"] == n


FALLBACK = """
    import importlib.abc, json, sys, warnings

    class BlockCore(importlib.abc.MetaPathFinder):
        # Makes `import fusedrnn._core` fail as it does when the compiled module was not built.
        def find_spec(self, name, path=None, target=None):
            if name == "fusedrnn._core":
                raise ImportError("blocked by the test: no compiled module")
            return None

    sys.meta_path.insert(0, BlockCore())
    import numpy as np
    import fusedrnn
    from fusedrnn import ops, reference

    rng = np.random.default_rng(0)
    B, T, I, H = 3, 4, 5, 6
    args = [rng.standard_normal(s) for s in ((B, T, I), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # so that only the package can keep it to one warning
        first = ops.lstm_forward(*args, lengths=[4, 1, 3])
        second = ops.lstm_forward(*args, lengths=[4, 1, 3])
        g = ops.lstm_backward(first[3], np.ones((B, T, H)))
    expected = reference.lstm_forward(*args, None, None, np.array([4, 1, 3]))
    g_expected = reference.lstm_backward(expected[3], np.ones((B, T, H)))
    print(json.dumps({
        "warnings": [[w.category.__name__, str(w.message)] for w in caught],
        "same_as_reference": all(np.array_equal(a, b) for a, b in zip(first[:3], expected[:3]))
                             and all(np.array_equal(a, b) for a, b in zip(second[:3], expected[:3]))
                             and np.array_equal(g.dx, g_expected.dx) and np.array_equal(g.dw_hh, g_expected.dw_hh),
        "backend": first[3].backend,
        "info": {k: fusedrnn.build_info()[k] for k in ("cpu", "backend")},
        "threads": fusedrnn.get_num_threads(),
    }))
"""


def test_missing_compiled_module_falls_back_to_the_reference_with_one_warning():
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FALLBACK)], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "FUSEDRNN_BACKEND"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["same_as_reference"]  # the fallback is the reference itself: same bits
    assert result["backend"] == "numpy"
    assert result["info"] == {"cpu": False, "backend": "numpy"}
    assert result["threads"] >= 1
    assert len(result["warnings"]) == 1, result["warnings"]  # one per process, not one per call
    category, message = result["warnings"][0]
    assert category == "RuntimeWarning"
    assert "NumPy reference" in message


def test_default_backend_is_the_compiled_module(monkeypatch):
    monkeypatch.delenv("FUSEDRNN_BACKEND", raising=False)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) for s in ((2, 3, 4), (5, 4), (5, 5), (5,), (5,))]
    *_, ctx = fusedrnn.ops.rnn_forward(*args)
    assert ctx.backend == "cpu"


WITHOUT_TORCH = """
    import sys
    sys.modules["torch"] = None  # as if PyTorch were not installed: `import torch` raises ImportError
    import numpy as np
    import fusedrnn
    from fusedrnn import nn, ops
    y, h_n, ctx = ops.gru(np.zeros((2, 3, 4)), [tuple(np.zeros(s) for s in ((6, 4), (6, 2), (6,), (6,)))])
    assert "torch" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
    try:
        import fusedrnn.torch
    except ImportError as error:
        print(error)
"""


def test_import_fusedrnn_works_without_torch_and_fusedrnn_torch_says_what_to_install():
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(WITHOUT_TORCH)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pip install fusedrnn[torch]" in proc.stdout


# The type stubs of the compiled modules (python/fusedrnn/_core.pyi, _cuda.pyi) list exactly what the
# modules define, with the same parameter names. The stubs ship in the wheel beside the modules, so
# a wheel run of this test also checks that they are packaged.

def _stub_functions(module: str) -> dict:
    """{function name: [parameter names]} of python/fusedrnn/<module>.pyi, read with ast."""
    import ast
    from pathlib import Path

    stub = Path(fusedrnn.__file__).resolve().parent / f"{module}.pyi"
    tree = ast.parse(stub.read_text(encoding="utf-8"), filename=str(stub))
    return {node.name: [a.arg for a in node.args.args] for node in tree.body if isinstance(node, ast.FunctionDef)}


def _module_functions(module) -> dict:
    """{public name: [parameter names]} of a pybind11 module, from the signature that starts each docstring."""
    import re

    functions = {}
    for name in dir(module):
        if name.startswith("_"):
            continue
        signature = getattr(module, name).__doc__.splitlines()[0]  # "name(a: type, b: type = 1) -> type"
        inside = signature[signature.index("(") + 1:signature.rindex(") ->")]
        functions[name] = re.findall(r"(?:^|, )(\w+):", inside)
    return functions


def _cuda_binding_functions(source) -> dict:
    """{name: [parameter names]} of the m.def calls in the CUDA module's binding source."""
    import re

    text = source.read_text(encoding="utf-8")
    body = text[text.index("PYBIND11_MODULE"):]
    return {re.match(r'\s*"(\w+)"', chunk).group(1): re.findall(r'py::arg\("(\w+)"\)', chunk)
            for chunk in body.split("m.def(")[1:]}


def test_the_core_stub_lists_every_function_of_the_compiled_module_and_no_other():
    import importlib

    import pytest

    try:
        core = importlib.import_module("fusedrnn._core")
    except ImportError:
        pytest.skip("the compiled CPU module is not built")
    stub, module = _stub_functions("_core"), _module_functions(core)
    assert set(module) - set(stub) == set(), "in fusedrnn._core but not in _core.pyi"
    assert set(stub) - set(module) == set(), "in _core.pyi but not in fusedrnn._core"
    for name, parameters in module.items():
        assert stub[name] == parameters, name


def test_the_cuda_stub_lists_every_function_of_the_cuda_module_and_no_other():
    """Against the module where it is built, else against its binding source in a checkout."""
    import importlib
    from pathlib import Path

    import pytest

    source = Path(__file__).resolve().parents[1] / "csrc" / "bindings" / "cuda_module.cpp"
    try:
        defined = _module_functions(importlib.import_module("fusedrnn._cuda"))
    except ImportError:
        if not source.is_file():
            pytest.skip("neither the CUDA module nor its binding source is here")
        defined = _cuda_binding_functions(source)
    stub = _stub_functions("_cuda")
    assert set(defined) - set(stub) == set(), "defined by fusedrnn._cuda but not in _cuda.pyi"
    assert set(stub) - set(defined) == set(), "in _cuda.pyi but not defined by fusedrnn._cuda"
    for name, parameters in defined.items():
        assert stub[name] == parameters, name
