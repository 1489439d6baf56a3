"""Tests of minilplr.data.cache that no loader test covers: the per-process memory of verified files."""
from __future__ import annotations

from minilplr.data import cache as CA


def test_a_verified_file_is_remembered_until_forgotten(tmp_path):
    f = tmp_path / "batch.bin"
    f.write_bytes(b"abc")
    st = f.stat()
    assert not CA.seen_verified(f, st, "sha")
    CA.mark_verified(f, st, "sha")
    assert CA.seen_verified(f, st, "sha") and not CA.seen_verified(f, st, "other sha")
    f.write_bytes(b"abcd")  # another size: the memory does not vouch for it
    assert not CA.seen_verified(f, f.stat(), "sha")
    CA.forget_verified()  # as in a new process
    assert not CA.seen_verified(f, st, "sha")
