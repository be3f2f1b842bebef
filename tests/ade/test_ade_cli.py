"""``fusedrnn ade download`` and ``fusedrnn ade stats``: results and one-line errors."""

from __future__ import annotations

import hashlib

from ade_fixtures import write_corpus

from fusedrnn import cli
from fusedrnn.ade import download as download_module


def test_stats_and_missing_corpus(tmp_path, capsys):
    folder = write_corpus(tmp_path / "ade")
    assert cli.main(["ade", "stats", "--data", str(folder), "--negatives"]) == 0
    out = capsys.readouterr().out
    assert "5 sentences (2 negative)" in out and "1 failed offset mappings" in out
    assert "skipped DRUG-AE.rel:8" in out and "failed mapping: 222" in out
    assert cli.main(["ade", "stats", "--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "fusedrnn ade download" in err and "Traceback" not in err


def test_download_command(tmp_path, capsys, monkeypatch):
    src = tmp_path / "mirror"
    src.mkdir()
    (src / "DRUG-AE.rel").write_bytes(b"1|x\n")
    monkeypatch.setattr(download_module, "SHA256", {"DRUG-AE.rel": hashlib.sha256(b"1|x\n").hexdigest()})
    args = ["ade", "download", "--dir", str(tmp_path / "out"), "--url", src.as_uri()]
    assert cli.main(args) == 0
    assert (tmp_path / "out" / "DRUG-AE.rel").read_bytes() == b"1|x\n"
    (src / "DRUG-AE.rel").write_bytes(b"bad")
    (tmp_path / "out" / "DRUG-AE.rel").unlink()
    assert cli.main(args) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
