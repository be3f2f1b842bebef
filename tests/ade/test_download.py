"""Download with file:// URLs: success, atomic replacement, sha256 mismatch, unreachable source."""

from __future__ import annotations

import hashlib

import pytest

from fusedrnn.ade.download import MIRROR, SHA256, download


def _mirror(tmp_path, files):
    src = tmp_path / "mirror"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    return src.as_uri() + "/"


def test_known_hashes_and_mirror():
    assert set(SHA256) == {"DRUG-AE.rel", "ADE-NEG.txt", "DRUG-DOSE.rel"}
    assert MIRROR.startswith("https://raw.githubusercontent.com/trunghlt/AdverseDrugReaction/")


def test_download_verifies_sha(tmp_path):
    data = {"a.rel": b"1|x\n", "b.txt": b"2 NEG y\n"}
    files = {n: hashlib.sha256(d).hexdigest() for n, d in data.items()}
    url = _mirror(tmp_path, data)
    out = download(tmp_path / "cache", base_url=url, files=files)
    assert {p.name for p in out.iterdir()} == set(data)  # no partial files left behind
    assert (out / "a.rel").read_bytes() == data["a.rel"]

    # A corrupted mirror: the error names the file, and the good copy already there is untouched.
    (tmp_path / "mirror" / "a.rel").write_bytes(b"corrupted")
    with pytest.raises(ValueError, match="sha256 mismatch .*a.rel"):
        download(out, base_url=url, files=files, force=True)
    assert (out / "a.rel").read_bytes() == data["a.rel"]
    assert {p.name for p in out.iterdir()} == set(data)


def test_download_unreachable(tmp_path):
    with pytest.raises(ConnectionError, match="could not download"):
        download(tmp_path / "cache", base_url=(tmp_path / "nowhere").as_uri(), files={"a.rel": "0" * 64})
    assert list((tmp_path / "cache").iterdir()) == []
