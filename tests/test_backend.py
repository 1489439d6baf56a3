"""The backend switch (minilplr.backend); the strict stand-in is tested in tests/testing/test_strict.py."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minilplr import backend as B
from minilplr.validate import check_finite, check_positive


def test_unknown_backend_names_the_argument():
    with pytest.raises(ValueError, match="backend: expected one of numpy, cupy, strict, got 'jax'"):
        B.get_backend("jax")


def test_cupy_unavailable_is_one_line():
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    with pytest.raises(B.BackendUnavailable) as info:
        B.get_backend("cupy")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("backend 'cupy': CuPy is not installed")
    # the extra to install, for both CUDA lines, and how to tell which one the driver has
    assert "'.[cuda12]'" in msg and "'.[cuda13]'" in msg and '"CUDA Version" nvidia-smi' in msg


def test_environment_variable_picks_the_default():
    code = "from minilplr import backend as B; print(B.get_backend().name)"
    env = dict(os.environ, MINILPLR_BACKEND="strict")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "strict"
    env["MINILPLR_BACKEND"] = "tpu"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "backend: expected one of" in bad.stderr


def test_round_trip_and_dtype(be):
    h = np.arange(6.0).reshape(2, 3)
    d = B.to_device(h, be, np.float32)
    assert d.dtype == np.float32 and d.shape == (2, 3)
    back = B.to_host(d)
    assert isinstance(back, np.ndarray) and np.array_equal(back, h)
    assert B.to_scalar(d.sum()) == 15.0


def test_resolve_dtype():
    assert B.resolve_dtype(None) == np.float32
    assert B.resolve_dtype("float64") == np.float64
    with pytest.raises(ValueError, match="dtype: expected"):
        B.resolve_dtype("int32")


def test_check_finite_names_the_argument(dev):
    check_finite("X", dev(np.ones((2, 2))))
    with pytest.raises(ValueError, match=r"X: expected finite values, got 1 NaN/inf entries of 4 \(first at index \(1, 0\)\)"):
        check_finite("X", dev([[1.0, 2.0], [np.nan, 3.0]]))
    with pytest.raises(ValueError, match="lr: expected a positive finite number"):
        check_positive("lr", float("inf"))
