"""The CUDA backend where it cannot run (no module, no CuPy, no device): clear errors naming what is
missing, and the switches' argument checks. Runs everywhere; the GPU itself is tests/test_cuda.py."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import fusedrnn
from fusedrnn import _gpu, _native, ops
from fusedrnn.nn import LSTM, Dense, Sequential


class DeviceArray:
    """Looks like another library's GPU array: only __cuda_array_interface__ (no memory behind it)."""

    def __init__(self, shape):
        self.shape = shape
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (0, False), "version": 3}

    def __len__(self):
        return self.shape[0]


def _lstm_args(rng, B=2, T=3, I=4, H=5):
    return (rng.standard_normal((B, T, I)), rng.standard_normal((4 * H, I)), rng.standard_normal((4 * H, H)),
            rng.standard_normal(4 * H), rng.standard_normal(4 * H))


@pytest.fixture
def no_cuda_module(monkeypatch):
    monkeypatch.setattr(_native, "_cuda", None)
    monkeypatch.setattr(_native, "_cuda_error", ImportError("blocked by the test"))


@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError


@pytest.fixture
def fake_cuda_module(monkeypatch):
    """A built module that sees no device."""
    module = types.SimpleNamespace(device_count=lambda: 0, build_info=lambda: {"cuda_runtime": "0.0"})
    monkeypatch.setattr(_native, "_cuda", module)
    return module


def test_build_info_reports_cuda():
    info = fusedrnn.build_info()
    assert isinstance(info["cuda"], bool)
    if info["cuda"]:
        assert {"cuda_runtime", "cublas", "architectures"} <= set(info["cuda_build"])
        assert info["cuda_devices"] >= 0
    else:
        assert info["cuda_error"]


def test_build_info_without_the_module(no_cuda_module):
    info = fusedrnn.build_info()
    assert info["cuda"] is False and "blocked by the test" in info["cuda_error"]


def test_forced_cuda_backend_without_the_module(no_cuda_module, monkeypatch, rng):
    monkeypatch.setenv("FUSEDRNN_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match=r"CUDA backend is not built.*FUSEDRNN_CUDA=ON"):
        ops.lstm_forward(*_lstm_args(rng))
    assert fusedrnn.build_info()["backend"].startswith("invalid: the CUDA backend is not built")


def test_gpu_array_without_cupy(no_cupy, rng):
    x, *params = _lstm_args(rng)
    with pytest.raises(RuntimeError, match=r"x: a GPU array \(DeviceArray\) needs CuPy"):
        ops.lstm_forward(DeviceArray(x.shape), *params)


def test_backend_without_cupy(no_cupy, fake_cuda_module, monkeypatch, rng):
    monkeypatch.setenv("FUSEDRNN_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match="needs CuPy"):
        ops.gru_forward(rng.standard_normal((2, 3, 4)), *(rng.standard_normal(s) for s in ((6, 4), (6, 2), (6,), (6,))))


def test_backend_without_a_device(fake_cuda_module, monkeypatch, rng):
    pytest.importorskip("cupy")
    monkeypatch.setenv("FUSEDRNN_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match=r"no CUDA device is visible"):
        ops.lstm_forward(*_lstm_args(rng))


def test_forced_cuda_backend_rejects_host_arrays(monkeypatch, rng):
    """With a usable backend, FUSEDRNN_BACKEND=cuda and NumPy arrays is a TypeError, not a silent CPU run."""
    monkeypatch.setattr(_native, "cuda", lambda: None)  # pretend the backend is usable
    monkeypatch.setenv("FUSEDRNN_BACKEND", "cuda")
    with pytest.raises(TypeError, match="x: FUSEDRNN_BACKEND=cuda needs GPU"):
        ops.lstm_forward(*_lstm_args(rng))


def test_host_backend_rejects_gpu_arrays(monkeypatch):
    monkeypatch.setattr(_native, "cuda", lambda: None)
    monkeypatch.setenv("FUSEDRNN_BACKEND", "cpu")
    with pytest.raises(TypeError, match="x: a GPU array, but FUSEDRNN_BACKEND=cpu"):
        _native.choose_backend(DeviceArray((2, 3, 4)))


def test_cuda_path_switch():
    assert _gpu.current_path() in _gpu.PATHS
    with fusedrnn.cuda_path("steps"):
        assert _gpu.current_path() == "steps"
        with fusedrnn.cuda_path("persistent"):
            assert _gpu.current_path() == "persistent"
        assert _gpu.current_path() == "steps"
    with pytest.raises(ValueError, match="path: expected one of auto, persistent, steps"):
        with fusedrnn.cuda_path("fast"):
            pass


def test_cuda_path_from_the_environment(monkeypatch):
    monkeypatch.setenv("FUSEDRNN_CUDA_PATH", "Steps")
    assert _gpu.current_path() == "steps"
    with fusedrnn.cuda_path("auto"):  # the explicit switch wins
        assert _gpu.current_path() == "auto"
    monkeypatch.setenv("FUSEDRNN_CUDA_PATH", "fast")
    with pytest.raises(ValueError, match="FUSEDRNN_CUDA_PATH"):
        _gpu.current_path()


def test_tf32_switch(monkeypatch):
    monkeypatch.setattr(_gpu, "_tf32", None)
    monkeypatch.delenv("FUSEDRNN_TF32", raising=False)
    assert _gpu.tf32_enabled() is False
    monkeypatch.setenv("FUSEDRNN_TF32", "1")
    assert _gpu.tf32_enabled() is True
    assert fusedrnn.allow_tf32(False) is True  # returns the previous setting; the call wins over the variable
    assert _gpu.tf32_enabled() is False
    with pytest.raises(TypeError, match="enabled: expected a bool"):
        fusedrnn.allow_tf32(1)
    monkeypatch.setenv("FUSEDRNN_TF32", "maybe")
    monkeypatch.setattr(_gpu, "_tf32", None)
    with pytest.raises(ValueError, match="FUSEDRNN_TF32"):
        _gpu.tf32_enabled()


def test_model_to_cuda_without_the_backend(no_cuda_module):
    model = Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)])
    with pytest.raises(RuntimeError, match="CUDA backend is not built"):
        model.to("cuda")
    assert model.device == "cpu"
    with pytest.raises(RuntimeError, match="CUDA backend is not built"):
        model.compile("adam", "mse", device="cuda")


def test_model_device_argument():
    model = Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)])
    with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda', got 'gpu'"):
        model.to("gpu")
    with pytest.raises(ValueError, match="device"):
        model.compile("adam", "mse", device="gpu")
    assert model.to("cpu") is model and model.device == "cpu"


def test_gpu_data_on_a_cpu_model():
    model = Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)])
    model.compile("adam", "mse")
    with pytest.raises(TypeError, match=r"x: GPU \(CuPy\) arrays, but .* is on the CPU.*model.to\('cuda'\)"):
        model.fit(DeviceArray((8, 4, 2)), np.zeros((8, 1), np.float32), verbose=0)
