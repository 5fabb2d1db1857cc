"""The claims ledger: every chapter's claims table, gathered at build time from the notebooks' results.

A chapter notebook ends with ``nb.finish(claims=[...])``, which writes ``book/results/<chapter>.json``
for a cpu or gpu run (see ``ddpm_lib.notebook.Session.finish``)::

    {"run_card": {"chapter", "profile", "device", "wall_time_s", "commit", "started", "torch", ...},
     "claims": [{"claim", "paper", "ours", "setting", "holds", "why"}, ...],
     "numbers": {...}}

The directive ::

    ```{claims-ledger}
    :results: book/results
    ```

renders a summary of all chapters, then one section per chapter: a link to the chapter, the run
card's profile, device and wall time, and the claims table. Notebooks in ``notebooks/`` that have
no results yet are listed as such. The page is re-read on every build, so it is always current.
A malformed results file is a build warning (an error under ``-W``).

A chapter recorded on one GPU as well (``make record NB=.. PROFILE=gpu``: the executed notebook in
``book/gpu/``, its results in ``book/results/gpu/<chapter>.json``) gets a second column of
verdicts: each gpu claim sits beside the cpu claim of the same text (or, where the texts differ,
the same position), and a claim only the gpu profile tests gets a row of its own.

    ```{gpu-records}
    :results: book/results/gpu
    ```

lists the gpu records (chapter, device, wall time, verdicts, a link to the executed notebook), or
says that there is none yet.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
from ddpm_lib.claims import KINDS, LEGACY_VERDICTS, VERDICTS, verdict_class, verdict_label  # noqa: E402
from ddpm_lib.notebook import claims_html  # noqa: E402

# What every stored claim must have (a results file whose claims lack one is a build warning, skipped)
REQUIRED = ("claim", "paper", "ours", "setting", "holds")
HOLDS = VERDICTS + LEGACY_VERDICTS
# Run cards from before the clean-commit rule may say "<commit>+dirty": the ledger says so on the
# chapter; tests/test_claims_ledger.py fails on any later one.
CLEAN_COMMIT_RULE = "2026-12-06"


def _chapter_title(root: Path, chapter: str) -> str:
    """The first markdown heading of the chapter's notebook, else the chapter id."""
    nb = root / "notebooks" / f"{chapter}.ipynb"
    try:
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    except (OSError, ValueError, KeyError):
        pass
    return chapter


def _wall(seconds) -> str:
    if seconds is None:
        return "unfinished"
    seconds = float(seconds)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _table(header: list[str], rows: list[list[nodes.Node | str]], widths: list[int], classes: list[str]) -> nodes.table:
    table = nodes.table(classes=classes)
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)

    def row(cells, head=False):
        r = nodes.row()
        for c in cells:
            entry = nodes.entry()
            entry += c if isinstance(c, nodes.Node) else nodes.paragraph(text=str(c))
            r += entry
        return r

    thead = nodes.thead()
    thead += row(header, head=True)
    tbody = nodes.tbody()
    for cells in rows:
        tbody += row(cells)
    group += thead
    group += tbody
    return table


def _holds_node(claim: dict | str) -> nodes.paragraph:
    """A verdict, coloured by its class (claims.css), with '(provisional: ...)' where it is."""
    c = claim if isinstance(claim, dict) else {"holds": claim}
    p = nodes.paragraph()
    p += nodes.inline(text=verdict_label(c), classes=["claim-holds", verdict_class(str(c.get("holds", "")))])
    return p


def _tally_node(claims: list[dict], kind: str | None = "paper") -> nodes.paragraph:
    """'3 yes · 1 no · ...' of the rows of ``kind`` (None: all), each count coloured as its verdict;
    provisional verdicts counted apart."""
    p = nodes.paragraph()
    rows = [c for c in claims if kind is None or c.get("kind", "") == kind]
    counts = Counter((c.get("holds", "n/a"), bool(c.get("provisional"))) for c in rows)
    first = True
    for h in HOLDS:
        for prov in (False, True):
            if counts[(h, prov)]:
                if not first:
                    p += nodes.Text(" · ")
                p += nodes.inline(text=f"{counts[(h, prov)]} {h}" + (" (provisional)" if prov else ""),
                                  classes=["claim-holds", verdict_class(h)])
                first = False
    if first:
        p += nodes.Text("none" if rows or kind else "no claims")
    return p


def _kinds(claims: list[dict]) -> str:
    counts = Counter(c.get("kind") or "unclassified" for c in claims)
    return ", ".join(f"{counts[k]} {k}" for k in (*KINDS, "unclassified") if counts[k])


def _doc_link(env, chapter: str, title: str, docname: str | None = None) -> nodes.Node:
    docname = docname or f"notebooks/{chapter}"
    if docname not in env.found_docs:
        return nodes.Text(title)
    ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=f"/{docname}",
                                refexplicit=True, refwarn=True)
    ref += nodes.inline(text=title)
    return ref


class _ResultsDirective(SphinxDirective):
    """A directive that reads results files (option ``results``, a folder): its page is re-read on every
    build, since those files may appear between builds (see ``_always_reread``)."""
    has_content = False
    option_spec = {"results": directives.unchanged}
    default_results = "book/results"

    def _start(self):
        env = self.env
        env.claims_ledger_docs = getattr(env, "claims_ledger_docs", set()) | {env.docname}
        root = Path(env.srcdir)
        return env, root, root / self.options.get("results", self.default_results)


class ClaimsLedger(_ResultsDirective):
    def run(self):
        env, root, folder = self._start()

        results = read_results(folder, root, env, self.get_location())
        gpu = read_results(folder / "gpu", root, env, self.get_location())
        for chapter in gpu.keys() - results.keys():  # a chapter recorded on a GPU only
            results[chapter] = ({}, [], {})
        results = dict(sorted(results.items()))

        out: list[nodes.Node] = []
        if not results:
            out.append(nodes.paragraph(text="No chapter has written results yet."))
            return out

        # The book-wide tally of paper claims, then one row per chapter
        every = [c for _, claims, _ in results.values() for c in claims]
        head = nodes.paragraph(classes=["claims-book-tally"])
        head += nodes.strong(text="The paper's claims, book-wide: ")
        head += _tally_node(every).children
        head += nodes.Text(f" (of {sum(c.get('kind') == 'paper' for c in every)} paper claims; "
                           f"all rows: {_kinds(every)})")
        out.append(head)
        out.append(_matrix(env, root, results, gpu))

        missing = [p.stem for p in sorted((root / "notebooks").glob("*.ipynb")) if p.stem not in results]
        if missing:
            para = nodes.paragraph(text="Not yet run with the cpu or gpu profile: ")
            for i, chapter in enumerate(missing):
                para += _doc_link(env, chapter, _chapter_title(root, chapter))
                if i < len(missing) - 1:
                    para += nodes.Text(", ")
            out.append(para)

        # One section per chapter
        for chapter, (card, claims, payload) in results.items():
            title = _chapter_title(root, chapter)
            section = nodes.section(ids=[f"claims-{chapter.replace('_', '-')}"])
            section += nodes.title(text=title)
            if card:
                meta = nodes.paragraph(classes=["claims-run-card"])
                meta += _doc_link(env, chapter, "the chapter")
                meta += nodes.Text(" · " + _card_text(card))
                section += meta
                section += _provenance(card, payload)
            g = gpu.get(chapter)
            if g:
                meta = nodes.paragraph(classes=["claims-run-card"])
                meta += _doc_link(env, chapter, "on one GPU", docname=f"book/gpu/{chapter}")
                meta += nodes.Text(" · " + _card_text(g[0]))
                section += meta
            pairs = pair_claims(claims, g[1] if g else None)
            rows = [c if c is not None else {"claim": gc.get("claim", ""), "holds": "n/a", "kind": gc.get("kind", ""),
                                             "ours": "tested on the GPU only"} for c, gc in pairs]
            section += nodes.raw("", claims_html(rows, gpu=[gc for _, gc in pairs] if g else None,
                                                    compact=True), format="html")
            for node in _as_recorded(payload):
                section += node
            out.append(section)
        return out


def _matrix(env, root: Path, results: dict, gpu: dict) -> nodes.table:
    """The book at a glance: a row per chapter, a column per verdict counting its paper claims (each
    header in its verdict's colour; provisional ones said in brackets), then its other rows by kind,
    its wall time and its gpu record's paper tally."""
    every = [c for _, claims, _ in results.values() for c in claims]
    verdicts = [h for h in HOLDS if h in VERDICTS or any(c.get("holds") == h for c in every)]
    header = []
    for h in verdicts:
        cell = nodes.paragraph()
        cell += nodes.inline(text=h, classes=["claim-holds", verdict_class(h)])
        header.append(cell)
    rows = []
    for chapter, (card, claims, _payload) in results.items():
        link = nodes.paragraph()
        link += _doc_link(env, chapter, chapter.split("_")[0] + " " + _chapter_title(root, chapter).split(":")[0])
        paper = [c for c in claims if c.get("kind", "") == "paper"]
        counts = []
        for h in verdicts:
            n = [c for c in paper if c.get("holds") == h]
            prov = sum(bool(c.get("provisional")) for c in n)
            cell = nodes.paragraph()
            if n:
                cell += nodes.inline(text=str(len(n)), classes=["claim-holds", verdict_class(h)])
                if prov:
                    cell += nodes.Text(f" ({prov} prov.)")
            else:
                cell += nodes.Text("·")
            counts.append(cell)
        others = [c for c in claims if c.get("kind", "") != "paper"]
        g = gpu.get(chapter)
        rows.append([link, *counts, _kinds(others) if others else "–",
                     _wall(card.get("wall_time_s")) if card else "–", _tally_node(g[1]) if g else "not recorded"])
    widths = [16] + [7] * len(verdicts) + [20, 8, 12]
    return _table(["chapter", *header, "other rows", "wall time", "on one GPU"], rows, widths,
                  ["claims-summary", "claims-matrix"])


def read_results(folder: Path, root: Path, env=None, location=None) -> dict[str, tuple[dict, list[dict], dict]]:
    """{chapter: (run card, claims, the whole payload)} of every results file in ``folder`` (none if it
    does not exist); a file that cannot be read, or a claim without one of the columns, is a build
    warning and skipped."""
    results = {}
    for path in sorted(folder.glob("*.json")):
        if env is not None:
            env.note_dependency(str(path))
        try:
            data = json.loads(path.read_text())
            card, claims = data["run_card"], data["claims"]
            for c in claims:
                missing = set(REQUIRED) - set(c)
                if missing:
                    raise KeyError(f"claim without {sorted(missing)}")
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning(f"claims-ledger: cannot read {path.relative_to(root)}: {err}", location=location)
            continue
        results[path.stem] = (card, claims, data)
    return results


def _provenance(card: dict, payload: dict) -> nodes.Node:
    """What ties the verdicts to code: a run card from uncommitted code says so; verdicts re-derived
    under a later calculus say when, and which rules the record could not re-derive."""
    box = nodes.container(classes=["claims-provenance"])
    if str(card.get("commit", "")).endswith("+dirty"):
        box += nodes.paragraph(
            text=f"Recorded from uncommitted code ({card['commit']}): these numbers are not tied to a commit. "
                 f"Records from {CLEAN_COMMIT_RULE} on must come from a clean commit; this chapter's re-record is "
                 "pending.", classes=["claims-dirty"])
    re_ = payload.get("rederived")
    if re_:
        box += nodes.paragraph(text=(
            f"Verdicts re-derived on {re_.get('date')} at {re_.get('commit')} under the {re_.get('calculus')}, "
            "from the measurements this record stores (make claims). Rules the record cannot re-derive are "
            "listed below the table; the table as recorded, under the second edition's calculus, follows them."))
    return box


def _as_recorded(payload: dict) -> list[nodes.Node]:
    """Under a re-derived table: the rules its record could not re-derive, and the table as recorded
    (folded: the toggle class of sphinx-togglebutton), so that no recorded row disappears."""
    if not payload.get("rederived"):
        return []
    out: list[nodes.Node] = []
    missing = payload.get("not_rederived", [])
    if missing:
        out.append(nodes.paragraph(text=f"Not re-derivable from this record ({len(missing)}; the chapter's "
                                        "re-record stores what they need):"))
        items = nodes.bullet_list()
        for m in missing:
            item = nodes.list_item()
            item += nodes.paragraph(text=m)
            items += item
        out.append(items)
    old = payload.get("claims_as_recorded", [])
    if old:
        box = nodes.container(classes=["toggle", "claims-as-recorded"])
        box += nodes.paragraph(text=f"As recorded ({len(old)} rows, second-edition calculus):")
        box += _table(["claim", "ours", "holds (as recorded)"],
                      [[str(c.get("claim", "")), str(c.get("ours", "")), _holds_node(c)] for c in old],
                      [40, 40, 10], ["claims-table", "claims-old"])
        out.append(box)
    return out


def pair_claims(cpu: list[dict], gpu: list[dict] | None) -> list[tuple[dict | None, dict | None]]:
    """The cpu claims in order, each with the gpu claim of the same text, else of the same position when
    the two lists are equally long (a claim whose text names the profile's data set), else None; then
    the gpu claims left over (tested on the GPU only) with None for the cpu side."""
    if gpu is None:
        return [(c, None) for c in cpu]
    by_text = {g["claim"]: i for i, g in enumerate(gpu)}
    cpu_texts = {c["claim"] for c in cpu}
    used, pairs = set(), []
    for i, c in enumerate(cpu):
        j = by_text.get(c["claim"])
        if j is None and len(cpu) == len(gpu) and gpu[i]["claim"] not in cpu_texts:
            j = i
        if j is not None and j in used:
            j = None
        if j is not None:
            used.add(j)
        pairs.append((c, gpu[j] if j is not None else None))
    pairs += [(None, g) for j, g in enumerate(gpu) if j not in used]
    return pairs


def _card_text(card: dict) -> str:
    return (f"profile {card.get('profile', '?')} · device {card.get('device', '?')} · "
            f"wall time {_wall(card.get('wall_time_s'))} · torch {card.get('torch', '?')} · "
            f"ddpm_lib {card.get('ddpm_lib', '?')} · commit {card.get('commit', '?')} · "
            f"run {card.get('started', '?')} UTC" + (f" · {card['training']}" if card.get("training") else ""))


class GpuRecords(_ResultsDirective):
    """The chapters recorded on one GPU, a row each with a link to the executed notebook."""
    default_results = "book/results/gpu"

    def run(self):
        env, root, folder = self._start()
        records = read_results(folder, root, env, self.get_location())
        if not records:
            return [nodes.paragraph(text="No chapter has been recorded on a GPU yet: the gpu profile is untested, "
                                         "and the cpu records are the book's results until one is.")]
        rows = []
        for chapter, (card, claims, _payload) in records.items():
            link = nodes.paragraph()
            link += _doc_link(env, chapter, _chapter_title(root, chapter), docname=f"book/gpu/{chapter}")
            rows.append([link, card.get("device", "?"), _wall(card.get("wall_time_s")), card.get("started", "?"),
                         _tally_node(claims, None)])
        return [_table(["chapter on one GPU", "device", "wall time", "run (UTC)", "claims"], rows,
                       [30, 26, 10, 14, 20], ["claims-summary"])]


def _always_reread(app, env, added, changed, removed):
    """The ledger depends on files that may appear between builds: read its page every time."""
    return sorted(getattr(env, "claims_ledger_docs", set()) & env.found_docs)


def _purge(app, env, docname):
    getattr(env, "claims_ledger_docs", set()).discard(docname)


def _merge(app, env, docnames, other):
    env.claims_ledger_docs = getattr(env, "claims_ledger_docs", set()) | getattr(other, "claims_ledger_docs", set())


def _static(app):
    app.config.html_static_path.append(str(HERE / "static"))


def run_card_dates(results: Path) -> list[str]:
    """The start dates (YYYY-MM-DD) of the run cards in ``results`` and its ``gpu`` folder."""
    dates = []
    for path in sorted(results.glob("*.json")) + sorted(results.glob("gpu/*.json")):
        try:
            dates.append(json.loads(path.read_text())["run_card"]["started"][:10])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return dates


def _dates_from_run_cards(app, config):
    """The footer's copyright years and "last updated" come from the recorded runs, not the build
    machine's clock: a rebuild of unchanged notebooks does not make the book look newer."""
    dates = run_card_dates(Path(app.srcdir) / "book" / "results")
    if not dates:
        return
    first = str(config.copyright or "").strip()[:4]
    years = sorted({d[:4] for d in dates} | ({first} if first.isdigit() else set()))
    config.copyright = years[0] if len(years) == 1 else f"{years[0]}-{years[-1]}"
    config.html_last_updated_fmt = f"{max(dates)} (the newest run card)"


def setup(app):
    app.add_directive("claims-ledger", ClaimsLedger)
    app.add_directive("gpu-records", GpuRecords)
    app.connect("env-get-outdated", _always_reread)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("builder-inited", _static)
    app.connect("config-inited", _dates_from_run_cards, priority=900)
    app.add_css_file("claims.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
