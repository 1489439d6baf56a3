"""Results on disk (:mod:`minilplr.experiments.io`): a verified unit with compressed arrays, written through
:mod:`minilplr.store` (one implementation of splitting, hashing and atomic writes)."""
import zipfile

import numpy as np

from minilplr.experiments.io import load_results, save_results


def test_results_are_a_unit_with_compressed_arrays(tmp_path):
    res = {"status": "finished", "curve": np.linspace(0, 1, 1000), "nested": {"k": [np.arange(3), 1.5]}}
    save_results(tmp_path, res)
    back = load_results(tmp_path)
    assert np.array_equal(back["curve"], res["curve"]) and np.array_equal(back["nested"]["k"][0], np.arange(3))
    assert '"sha256"' in (tmp_path / "results.json").read_text()  # the JSON names the arrays it belongs to
    with zipfile.ZipFile(tmp_path / "results.npz") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}


def test_only_store_implements_splitting_hashing_and_atomic_writes():
    """One implementation of each: io.py names the results files, store.py does the work."""
    import minilplr.experiments.io as io_mod
    import minilplr.store as store

    for dup in ("_split", "_join", "atomic_write_bytes", "to_jsonable"):
        assert not hasattr(io_mod, dup), dup
    assert io_mod.config_hash is store.config_hash
