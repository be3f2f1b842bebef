"""Predicted spans as a user reads them: JSON lines, plain text or HTML (``fusedrnn ade predict --format``).

Every span may carry ``lexicon``: the lexicon entry that its text is exactly (ade.lexicons; the drug
lexicon for DRUG spans, the disease lexicon for ADE spans) with the canonical name and identifiers
(DrugBank, MeSH, MedlinePlus), or null when its text is no entry.

- ``jsonl``: one object per line, ``{"line", "text", "spans": [{"start", "end", "label", "text", "lexicon"}]}``;
- ``text``: each sentence with its spans bracketed and labelled at the close (``[[Aspirin]DRUG-induced
  rash]ADE``: a drug inside an adverse effect stays visible), then one indented line per span that
  has a lexicon entry;
- ``html``: one page, a paragraph per sentence, spans as coloured ``<mark>`` elements whose tooltip
  shows the label and the lexicon entry (text escaped; nested spans nest).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from .corpus import Span

FORMATS = ("jsonl", "text", "html")
_ID_NAMES = {"drugbank_id": "DrugBank", "mesh_id": "MeSH", "medline_plus_id": "MedlinePlus"}


def format_for(path: str, requested: str | None) -> str:
    """The requested format, else the one the output's suffix names (.txt text, .html/.htm html, else jsonl)."""
    if requested is not None:
        if requested not in FORMATS:
            raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {requested!r}")
        return requested
    return {".txt": "text", ".html": "html", ".htm": "html"}.get(Path(path).suffix.lower(), "jsonl")


def annotate(spans: Sequence[Span], lexicons) -> list[dict]:
    """Spans as dicts, each with its lexicon entry (or None; every one None without ``lexicons``)."""
    out = []
    for s in spans:
        entry = None
        if lexicons is not None:
            entry = lexicons.for_label(s.label).lookup(s.text)
        out.append({"start": s.start, "end": s.end, "label": s.label, "text": s.text, "lexicon": entry})
    return out


def _entry_text(entry: dict) -> str:
    ids = ", ".join(f"{name} {entry[key]}" for key, name in _ID_NAMES.items() if key in entry)
    return f"{entry.get('name', entry['canonical'])}" + (f" ({ids})" if ids else "")


def _boundaries(spans: Sequence[dict]):
    """(position, closing spans, opening spans) at each span boundary, in order of position; at one
    position spans close before others open, the inner ones first, and the outer ones open first."""
    spans = [s for s in spans if s["start"] < s["end"]]
    points = sorted({s["start"] for s in spans} | {s["end"] for s in spans})
    for at in points:
        closing = sorted((s for s in spans if s["end"] == at), key=lambda s: -s["start"])
        opening = sorted((s for s in spans if s["start"] == at), key=lambda s: -s["end"])
        yield at, closing, opening


def _nested(text: str, spans: Sequence[dict]):
    """("text", piece) and ("open" | "close", span) events that nest properly: a span that crosses
    another (possible with two heads) is closed where the inner one ends and reopened after it."""
    at, open_spans = 0, []
    for pos, closing, opening in _boundaries(spans):
        yield "text", text[at:pos]
        if closing:
            # Close down to the deepest span that ends here, then reopen the ones that go on.
            depth = min(open_spans.index(s) for s in closing)
            reopen = [s for s in open_spans[depth:] if s not in closing]
            for s in reversed(open_spans[depth:]):
                yield "close", s
            del open_spans[depth:]
            opening = reopen + opening
        for s in opening:
            yield "open", s
            open_spans.append(s)
        at = pos
    yield "text", text[at:]


def text_line(text: str, spans: Sequence[dict]) -> str:
    """The sentence with ``[`` where a span opens and ``]LABEL`` where it closes; lexicon lines below."""
    parts = [what if kind == "text" else "[" if kind == "open" else "]" + what["label"]
             for kind, what in _nested(text, spans)]
    lines = ["".join(parts)]
    lines += [f"    {s['label']} {s['text']}: {_entry_text(s['lexicon'])}" for s in spans if s["lexicon"]]
    return "\n".join(lines)


def _tooltip(span: dict) -> str:
    return span["label"] + (f": {_entry_text(span['lexicon'])}" if span["lexicon"] else "")


def html_paragraph(line: int, text: str, spans: Sequence[dict]) -> str:
    """One sentence as a paragraph; crossing spans (possible with two heads) are closed and reopened."""
    parts = [html.escape(what) if kind == "text" else "</mark>" if kind == "close"
             else f'<mark class="{what["label"].lower()}" title="{html.escape(_tooltip(what))}">'
             for kind, what in _nested(text, spans)]
    return f'<p><span class="line">{line}</span> {"".join(parts)}</p>'


_HTML_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ADE tagger predictions</title>
<style>
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.8; }
.line { color: #888; font-size: 80%; margin-right: 0.5em; }
mark { padding: 0.1em 0.15em; border-radius: 0.2em; }
mark.ade { background: #ffd6d6; }
mark.drug { background: #cfe8ff; }
mark mark { border: 1px solid #3a7bd5; }
</style>
</head>
<body>
<p>Adverse effects <mark class="ade">like this</mark>, drugs <mark class="drug">like this</mark>; hover a span
for its lexicon entry.</p>
"""


def render(fmt: str, rows: Sequence[tuple[int, str, list[dict]]]) -> str:
    """The whole output for (line number, text, annotated spans) rows."""
    if fmt == "jsonl":
        return "".join(json.dumps({"line": n, "text": t, "spans": s}, ensure_ascii=False) + "\n" for n, t, s in rows)
    if fmt == "text":
        return "".join(text_line(t, s) + "\n" for _, t, s in rows)
    if fmt == "html":
        return _HTML_HEAD + "".join(html_paragraph(n, t, s) + "\n" for n, t, s in rows) + "</body>\n</html>\n"
    raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
