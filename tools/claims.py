"""Re-derive every chapter's verdicts from the measurements its results file stores, without
re-training (``make claims``; ``--write`` updates the results, so the ledger shows the verdicts under
the current calculus).

    python tools/claims.py                 # print, per chapter, recorded vs re-derived verdicts
    python tools/claims.py --write         # store the re-derived verdicts in book/results
    python tools/claims.py 02_ddpm --write # one chapter

A results file written through the typed seam stores the chapter's ``Record`` whole; one written
before it stores a dict of ``numbers``, which a chapter's ``record_from_numbers`` turns into a record
where it can. A rule that needs what an old record does not store (per-image hits, replicates) is
listed as not re-derivable, with the reason; the verdicts as recorded stay in the file beside the
re-derived ones (``claims_as_recorded``), and the ledger shows both.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddpm_lib import chapters, claims, notebook  # noqa: E402


def load_record(mod, payload: dict):
    """The chapter's record from a results payload: stored whole, or rebuilt from old numbers."""
    if "record" in payload:
        return mod.Record.from_json(payload["record"])
    if hasattr(mod, "record_from_numbers"):
        return mod.record_from_numbers(claims.decode(payload.get("numbers", {})), payload.get("run_card", {}))
    raise claims.Missing("the results store no typed record and the chapter has no record_from_numbers")


def rederive(chapter: str, payload: dict) -> tuple[list[claims.Claim], list[str]]:
    """(re-derived rows, rules that could not run with why) for one results payload."""
    try:
        mod = chapters.module(chapter)
    except ModuleNotFoundError:
        mod = None
    if mod is None or not chapters.on_typed_seam(mod):
        raise claims.Missing(f"chapter {chapter} does not state its claims as rules over a record yet")
    rec = load_record(mod, payload)
    rows = claims.derive(mod.RULES, rec, strict="record" in payload)
    return [r for r in rows if isinstance(r, claims.Claim)], [str(r) for r in rows if isinstance(r, claims.Missing)]


def results_files(names: list[str]) -> list[Path]:
    files = sorted((ROOT / "book" / "results").glob("*.json")) + sorted((ROOT / "book" / "results" / "gpu").glob("*.json"))
    return [f for f in files if not names or f.stem in names]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapters", nargs="*", help=f"chapters (default: all): {sorted(chapters.MODULES)}")
    ap.add_argument("--write", action="store_true", help="store the re-derived verdicts in the results files")
    a = ap.parse_args(argv)
    bad = sorted(set(a.chapters) - set(chapters.MODULES))
    if bad:
        ap.error(f"unknown chapter(s) {bad}; valid choices: {sorted(chapters.MODULES)}")
    commit = notebook.git_commit(ROOT)
    for path in results_files(a.chapters):
        payload = json.loads(path.read_text())
        recorded = payload.get("claims_as_recorded", payload["claims"])
        print(f"\n== {path.relative_to(ROOT)} (recorded at {payload['run_card'].get('commit')})")
        try:
            rows, missing = rederive(path.stem, payload)
        except claims.Missing as e:
            print(f"   not re-derived: {e}")
            continue
        print("   as recorded:    " + "; ".join(f"{i}: {c['holds']}" for i, c in enumerate(recorded)))
        for r in rows:
            print(f"   {r.name:<32} {r.kind:<10} {notebook.verdict_label(r)}")
        for m in missing:
            print(f"   not re-derivable: {m}")
        if a.write:
            if "record" not in payload:
                payload["claims_as_recorded"] = recorded
                payload["not_rederived"] = missing
                payload["rederived"] = dict(commit=commit, date=dt.date.today().isoformat(),
                                            calculus="third edition (weakest part, kinds, provisional rows)")
            payload["claims"] = [r.as_dict() for r in rows]
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(payload, indent=1, default=str))
            os.replace(tmp, path)
            print(f"   written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
