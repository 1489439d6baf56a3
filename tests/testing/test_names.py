"""CuPy's list of names (minilplr.testing.names): written from CuPy by scripts/cupy_names.py, and up to date."""
from pathlib import Path

import pytest

from minilplr.testing import names as N

ROOT = Path(__file__).resolve().parents[2]


def test_the_name_list_is_cupys():
    names = N.CUPY_NAMES
    assert names["generated_by"] == "scripts/cupy_names.py" and names["cupy_version"].split(".")[0].isdigit()
    cupy = set(names["modules"]["cupy"])
    assert {"asnumpy", "get_array_module", "cuda", "linalg", "float32", "newaxis"} <= cupy  # CuPy's own names
    assert not {"geomspace", "errstate", "insert"} & cupy
    assert {"get", "set", "scatter_add"} <= set(names["ndarray"]) and "resize" not in names["ndarray"]
    assert {"eigsh", "LinearOperator"} <= set(names["modules"]["cupyx.scipy.sparse.linalg"])


def test_committed_names_match_the_installed_cupy():
    """Skipped where CuPy does not import; elsewhere the committed list must be this CuPy's (else rerun the script)."""
    pytest.importorskip("cupy")
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("cupy_names", ROOT / "scripts" / "cupy_names.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    installed = gen.collect()
    committed = json.loads((ROOT / "minilplr" / "testing" / "cupy_names.json").read_text())
    for key, want in gen.names_only(installed)["modules"].items():
        got = committed["modules"].get(key)
        assert got == want, (f"{key}: the committed list (CuPy {committed['cupy_version']}) is not the installed "
                             f"CuPy {installed['cupy_version']}'s: missing {sorted(set(want) - set(got or ()))[:10]}, "
                             f"extra {sorted(set(got or ()) - set(want))[:10]}; run scripts/cupy_names.py")
    assert committed["ndarray"] == installed["ndarray"], "ndarray's names changed: run scripts/cupy_names.py"
