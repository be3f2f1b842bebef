"""Reader for the ADE corpus v2 (Gurulingappa et al., 2012): ``DRUG-AE.rel`` and ``ADE-NEG.txt``.

Formats (see the corpus README.txt):

- ``DRUG-AE.rel``: one drug/adverse-effect relation per line, 8 pipe-separated fields
  ``PMID|sentence|adverse effect|begin|end|drug|begin|end``. Offsets are end-exclusive and count
  characters of the whole annotated document ``"PMID\\n\\nTitle\\n\\nAbstract"``, not of the sentence.
- ``ADE-NEG.txt``: ``PMID NEG sentence``, one sentence without adverse effects per line.

Offset mapping: within one sentence every annotation has the same shift ``document offset - sentence
offset`` (the sentence's start in the document). The reader collects, for every mention, the shifts
at which its text occurs in the sentence and picks the shift that places the most mentions (ties: the
smallest). That resolves repeated mention texts to the right occurrence, which a first-occurrence
search would not. Every mention is then checked at ``begin - shift``; a mention whose text is not
there is dropped and counted in ``ReadStats.failed_mappings`` instead of guessed.

Drug inside adverse effect (e.g. ADE "ifosfamide-induced encephalopathy" and drug "ifosfamide"):
both mentions are kept in ``Record.ade`` and ``Record.drug`` and counted in
``ReadStats.drug_inside_ade``. Spans of one type never overlap in this corpus. Token labelling
(``tokens.py``) resolves the cross-type overlap: the adverse effect wins, so the 5-class BIO tags label
the nested drug tokens as part of the ADE; the 3-class tags are unaffected.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter, defaultdict
from pathlib import Path

REL_FILE = "DRUG-AE.rel"
NEG_FILE = "ADE-NEG.txt"
ENV_VAR = "FUSEDRNN_ADE_DIR"


def default_cache_dir() -> Path:
    """The cache folder used when neither ``--data`` nor ``$FUSEDRNN_ADE_DIR`` is given."""
    return Path(os.path.expanduser("~")) / ".cache" / "fusedrnn" / "ade"


@dataclasses.dataclass(frozen=True)
class Span:
    """A character span ``text[start:end]`` (end-exclusive) with its label ``"ADE"`` or ``"DRUG"``."""

    start: int
    end: int
    label: str
    text: str


@dataclasses.dataclass
class Record:
    """One sentence with all of its annotations.

    ``ade`` and ``drug``: deduplicated spans sorted by (start, end), offsets into ``text``.
    ``relations``: (ade index, drug index) pairs into those lists. Negative sentences have none.
    """

    pmid: str
    text: str
    ade: list[Span] = dataclasses.field(default_factory=list)
    drug: list[Span] = dataclasses.field(default_factory=list)
    relations: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    negative: bool = False

    @property
    def spans(self) -> list[Span]:
        """Both types together, sorted by (start, end, label)."""
        return sorted(self.ade + self.drug, key=lambda s: (s.start, s.end, s.label))


@dataclasses.dataclass
class ReadStats:
    """Counts from one read; ``malformed`` maps ``"FILE:LINE"`` to the reason the line was skipped."""

    relation_lines: int = 0
    records: int = 0
    negative_records: int = 0
    ade_mentions: int = 0
    drug_mentions: int = 0
    failed_mappings: int = 0
    drug_inside_ade: int = 0
    drug_inside_ade_sentences: int = 0
    malformed: dict[str, str] = dataclasses.field(default_factory=dict)
    failed: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.records} sentences ({self.negative_records} negative), {self.ade_mentions} ADE and "
            f"{self.drug_mentions} drug mentions, {self.failed_mappings} failed offset mappings, "
            f"{self.drug_inside_ade} drug-inside-ADE relations in {self.drug_inside_ade_sentences} "
            f"sentences, {len(self.malformed)} malformed lines skipped"
        )


def resolve_data_dir(data: str | os.PathLike | None = None) -> Path:
    """The corpus folder: ``data`` if given, else ``$FUSEDRNN_ADE_DIR``, else the cache folder.

    Raises FileNotFoundError naming every place looked at when none holds ``DRUG-AE.rel``.
    """
    if data is not None:
        places = [("--data", Path(data))]
    else:
        places = []
        if os.environ.get(ENV_VAR):
            places.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR])))
        places.append(("cache", default_cache_dir()))
    for _, place in places:
        if (place / REL_FILE).is_file():
            return place
    looked = ", ".join(f"{how} {place}" for how, place in places)
    raise FileNotFoundError(
        f"ADE corpus not found: no {REL_FILE} in {looked}. Pass --data DIR, set ${ENV_VAR}, "
        f"or run `fusedrnn ade download` to fetch it into {default_cache_dir()}."
    )


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"ADE corpus file missing: {path}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    return text.splitlines()


def _parse_rel_line(line: str) -> tuple[str, str, tuple[str, int, int], tuple[str, int, int]] | str:
    """A relation line's (pmid, sentence, (ade, b, e), (drug, b, e)), or the reason it is malformed."""
    parts = line.split("|")
    if len(parts) != 8:
        return f"expected 8 '|'-separated fields, got {len(parts)}"
    pmid, sentence, ade, ab, ae, drug, db, de = parts
    if not pmid.strip().isdigit():
        return f"PubMed ID {pmid!r} is not a number"
    if not sentence or not ade or not drug:
        return "empty sentence or mention"
    try:
        offs = [int(x) for x in (ab, ae, db, de)]
    except ValueError:
        return "offsets are not integers"
    if offs[1] - offs[0] != len(ade) or offs[3] - offs[2] != len(drug) or min(offs) < 0:
        return "offsets do not match the mention lengths"
    return pmid.strip(), sentence, (ade, offs[0], offs[1]), (drug, offs[2], offs[3])


def _best_shift(sentence: str, mentions: list[tuple[str, int]]) -> int | None:
    """The shift placing the most (text, doc begin) mentions in ``sentence``; None if it places none."""
    votes: Counter[int] = Counter()
    for text, begin in set(mentions):
        pos = sentence.find(text)
        while pos >= 0:
            votes[begin - pos] += 1
            pos = sentence.find(text, pos + 1)
    if not votes:
        return None
    # Most mentions placed; on a tie the smallest shift (deterministic, rarely needed).
    return min(votes, key=lambda s: (-votes[s], s))


def read_relations(path: Path, stats: ReadStats) -> list[Record]:
    """Group ``DRUG-AE.rel`` into one Record per (PubMed ID, sentence), in first-appearance order."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        parsed = _parse_rel_line(line)
        if isinstance(parsed, str):
            stats.malformed[f"{path.name}:{lineno}"] = parsed
            continue
        stats.relation_lines += 1
        pmid, sentence, ade, drug = parsed
        groups[(pmid, sentence)].append((ade, drug))

    records = []
    for (pmid, sentence), rels in groups.items():
        mentions = [(t, b) for ade, drug in rels for (t, b, _) in (ade, drug)]
        shift = _best_shift(sentence, mentions)
        record = Record(pmid=pmid, text=sentence)
        index: dict[tuple[str, int, int], int] = {}  # (label, start, end) -> position in ade/drug

        def place(label: str, mention: tuple[str, int, int]) -> int | None:
            text, begin, end = mention
            start = None if shift is None else begin - shift
            if start is None or start < 0 or sentence[start : start + len(text)] != text:
                stats.failed_mappings += 1
                stats.failed.append(f"{pmid}: {label} {text!r} at document offset {begin}")
                return None
            key = (label, start, start + len(text))
            if key not in index:
                spans = record.ade if label == "ADE" else record.drug
                index[key] = len(spans)
                spans.append(Span(start, start + len(text), label, text))
            return index[key]

        # Failed mentions are counted once per relation line they appear on.
        pairs = [(place("ADE", ade), place("DRUG", drug)) for ade, drug in rels]
        _sort_record(record, pairs)
        records.append(record)
    return records


def _sort_record(record: Record, pairs: list[tuple[int | None, int | None]]) -> None:
    """Sort spans by position and rewrite relation indices to match; count drug-inside-ADE pairs."""
    order_a = sorted(range(len(record.ade)), key=lambda i: (record.ade[i].start, record.ade[i].end))
    order_d = sorted(range(len(record.drug)), key=lambda i: (record.drug[i].start, record.drug[i].end))
    new_a = {old: new for new, old in enumerate(order_a)}
    new_d = {old: new for new, old in enumerate(order_d)}
    record.ade = [record.ade[i] for i in order_a]
    record.drug = [record.drug[i] for i in order_d]
    record.relations = sorted({(new_a[a], new_d[d]) for a, d in pairs if a is not None and d is not None})


def read_negatives(path: Path, stats: ReadStats) -> list[Record]:
    """``ADE-NEG.txt`` lines ``PMID NEG sentence`` as Records without mentions (duplicates kept once)."""
    records, seen = [], set()
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split(" ", 2)
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] != "NEG" or not parts[2].strip():
            stats.malformed[f"{path.name}:{lineno}"] = "expected 'PMID NEG sentence'"
            continue
        key = (parts[0], parts[2])
        if key in seen:
            continue
        seen.add(key)
        records.append(Record(pmid=parts[0], text=parts[2], negative=True))
    return records


def read_corpus(
    data: str | os.PathLike | None = None, *, negatives: bool = False
) -> tuple[list[Record], ReadStats]:
    """Read the corpus from ``resolve_data_dir(data)``.

    Returns (records, stats): the DRUG-AE sentences first, then (with ``negatives=True``) the
    ADE-NEG sentences, which carry ``negative=True`` and no spans.
    """
    folder = resolve_data_dir(data)
    if folder.resolve() == default_cache_dir().resolve():  # where `fusedrnn ade download` puts the files
        from .download import check_downloaded

        check_downloaded(folder, [REL_FILE] + ([NEG_FILE] if negatives else []))
    stats = ReadStats()
    records = read_relations(folder / REL_FILE, stats)
    for r in records:
        for a, d in r.relations:
            ade, drug = r.ade[a], r.drug[d]
            if drug.start < ade.end and ade.start < drug.end:  # overlaps (all of them are contained)
                stats.drug_inside_ade += 1
        stats.drug_inside_ade_sentences += any(
            r.drug[d].start < r.ade[a].end and r.ade[a].start < r.drug[d].end for a, d in r.relations
        )
        stats.ade_mentions += len(r.ade)
        stats.drug_mentions += len(r.drug)
    if negatives:
        neg = read_negatives(folder / NEG_FILE, stats)
        stats.negative_records = len(neg)
        records += neg
    stats.records = len(records)
    return records, stats
