"""Provenance and the ledger under the third-edition calculus: a record comes from a clean commit,
the committed verdicts are the ones the stored records give today, and the ledger shows kinds, a
coloured tally of paper claims and every verdict coloured."""
from __future__ import annotations

import json
import re
import sys

import pytest

from conftest import ROOT
from ddpm_lib import chapters, claims, notebook

sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import claims as claims_tool  # noqa: E402  (tools/claims.py)
import claims_ledger  # noqa: E402
import run_notebook  # noqa: E402
from test_gpu_records import _build, _results  # noqa: E402

RESULTS = sorted((ROOT / "book" / "results").glob("*.json")) + sorted((ROOT / "book" / "results" / "gpu").glob("*.json"))


def dirty_after_rule(card: dict) -> bool:
    """A run card from uncommitted code, started on or after the clean-commit rule."""
    return str(card.get("commit", "")).endswith("+dirty") and card.get("started", "")[:10] >= claims_ledger.CLEAN_COMMIT_RULE


def test_no_record_since_the_rule_comes_from_uncommitted_code():
    assert dirty_after_rule({"commit": "abc1234+dirty", "started": "2026-12-07 10:00"})  # the check can fail
    assert not dirty_after_rule({"commit": "abc1234", "started": "2026-12-07 10:00"})
    bad = [p.name for p in RESULTS if dirty_after_rule(json.loads(p.read_text())["run_card"])]
    assert not bad, f"recorded from uncommitted code after {claims_ledger.CLEAN_COMMIT_RULE}: {bad}"


def test_make_record_refuses_a_dirty_tree(monkeypatch):
    monkeypatch.setattr(notebook, "uncommitted", lambda root: [" M ddpm_lib/stats.py"])
    monkeypatch.setattr(run_notebook, "sync_pair", lambda nb: None)
    monkeypatch.setattr(run_notebook, "execute", lambda *a, **k: pytest.fail("ran a record from a dirty tree"))
    with pytest.raises(SystemExit, match="clean commit"):
        run_notebook.record("00_forward_process", "cpu")


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_committed_verdicts_are_the_ones_the_stored_record_gives(path):
    """Re-deriving from what the results store gives exactly the committed rows (name, kind, verdict),
    so a change of calculus shows in the ledger only through `make claims`, visibly."""
    payload = json.loads(path.read_text())
    assert "record" in payload or "rederived" in payload, \
        f"{path.stem}: neither a typed record nor re-derived verdicts; run make claims NB={path.stem}"
    rows, missing = claims_tool.rederive(path.stem, payload)
    got = [(r.name, r.kind, r.holds) for r in rows]
    assert got == [(c.get("name"), c.get("kind"), c["holds"]) for c in payload["claims"]], \
        f"{path.name}: committed verdicts differ from the re-derived ones; run make claims NB={path.stem}"
    assert missing == payload.get("not_rederived", [])
    for c in payload["claims"]:
        assert c["kind"] in claims.KINDS and c["holds"] in claims.VERDICTS, c


def test_every_chapter_module_is_registered():
    assert sorted(chapters.MODULES) == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    with pytest.raises(ValueError, match="valid choices"):
        chapters.module("99_nope")


def _row(text, holds, kind="paper", **kw):
    c = claims.Claim(text, "p", "o", "s", holds, kind=kind, **kw)
    return c.as_dict()


def test_the_ledger_tallies_paper_claims_and_colours_every_verdict(tmp_path):
    src = tmp_path / "book"
    src.mkdir()
    rows = [_row("a yes", "yes"), _row("a no", "no"), _row("an undecided", "not significant"),
            _row("a dead model", "did not train"), _row("not measured", "n/a"),
            _row("one seed", "yes", seeds=1), _row("a gate", "yes", kind="check")]
    _results(src / "results", "02_x", "cpu", rows)
    card_dirty = json.loads((src / "results" / "02_x.json").read_text())
    card_dirty["run_card"]["commit"] = "abc+dirty"
    card_dirty.update(rederived={"date": "2026-12-06", "commit": "def", "calculus": "third edition"},
                      not_rederived=["old_rule: Record lacks hits"],
                      claims_as_recorded=[{"claim": "an old conjunction", "ours": "o", "holds": "partly"}])
    (src / "results" / "02_x.json").write_text(json.dumps(card_dirty))
    html = _build(src)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    for h in claims.VERDICTS:  # every verdict has a class without spaces, so the CSS reaches it
        assert re.search(rf"claim-holds {re.escape(claims_ledger.verdict_class(h))}\b", html), h
    # the book-wide tally counts paper rows only; the check is counted under kinds
    assert "1 yes · 1 yes (provisional) · 1 no · 1 not significant · 1 did not train · 1 n/a (of 6 paper claims" in text
    assert "6 paper, 1 check" in text
    # "(provisional)" in the verdict's cell, the reason once in the row's detail
    assert "yes (provisional)" in text and "provisional : 1 training seed" in text
    assert "Recorded from uncommitted code (abc+dirty)" in text
    # a re-derived record keeps every recorded row in sight: what it cannot re-derive, and the old table
    assert "old_rule: Record lacks hits" in text and "an old conjunction" in text
    assert re.search(r"claim-holds claim-holds-partly", html)
    # the book-wide matrix: a row per chapter, a count per verdict of its paper claims
    matrix = html.split("claims-matrix", 1)[1].split("</table>", 1)[0]
    assert "02_x" in matrix and re.search(r"claim-holds-did-not-train\">1<", matrix.replace("'", '"'))
    # a claim is one short line: the numbers and the test fold under it
    assert "numbers, test and notes" in html and "<b>the paper</b>: p" in html
