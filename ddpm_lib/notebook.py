"""What every chapter notebook does around its science: parameters, the run card, results.

A chapter's first cells are::

    nb = notebook.Session("02_ddpm", globals())    # setup cell: remembers the names defined so far
    profile = "auto"                                # the papermill `parameters` cell
    seed = 0
    cfg = nb.start()                                # validates parameters, shows the run card

``start`` treats every name that appeared after the ``Session`` call as a parameter: ``profile``,
``seed`` or a field of the chapter's preset (``profiles.fields``). Anything else, such as a mistyped
name passed with ``papermill -p``, raises at once with the list of valid names.

``nb.finish(claims)`` shows the claims table, writes the chapter's results (JSON) and completes the
run card with the wall time. Results of a cpu run of the preset as it is (no parameter but the
profile, seed 0) go to ``book/results/``, of a gpu run to ``book/results/gpu/`` (the claims page of
the book reads both: a gpu record never replaces the cpu one); smoke runs and runs with parameters of
their own write under ``runs/results/`` so they never replace a recorded run.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import OMP_GUARD, __version__, profiles
from .claims import (KINDS, VERDICT_COLOURS, VERDICTS, Claim, Record, provisional_reasons,  # noqa: F401
                     verdict_class, verdict_label)

if TYPE_CHECKING:
    from . import train


def _is_book_root(p: Path) -> bool:
    return (p / "_config.yml").exists() and (p / "ddpm_lib").is_dir()


def repo_root(start: Path | None = None) -> Path | None:
    """The book's root (the folder with _config.yml and ddpm_lib/): the checkout this library was
    imported from (an editable install), else the first such folder upwards from ``start`` (cwd).
    So results land in the book wherever a notebook is run from."""
    lib_root = Path(__file__).resolve().parents[1]
    if start is None and _is_book_root(lib_root):
        return lib_root
    here = (start or Path.cwd()).resolve()
    for p in [here, *here.parents]:
        if _is_book_root(p):
            return p
    return None


def uncommitted(root: Path | None) -> list[str] | None:
    """Tracked files with uncommitted changes under ``root`` (``git status --porcelain``), or None
    where that cannot be told (not a git checkout, no git)."""
    if root is None:
        return None
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.splitlines() if out.returncode == 0 else None


def git_commit(root: Path | None) -> str:
    """'<short sha>', '<short sha>+dirty' with uncommitted changes, or 'unknown'."""
    if root is None:
        return "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha, changed = out.stdout.strip(), uncommitted(root)
    if not sha or changed is None:
        return "unknown"
    return sha + ("+dirty" if changed else "")


def rank() -> int:
    """This process's rank under torchrun (0 otherwise): only rank 0 shows cards and writes results."""
    return int(os.environ.get("RANK", "0"))


def device() -> torch.device:
    """The device for this process: cuda (this rank's GPU under torchrun) if available, else cpu."""
    from .train import default_device

    return default_device()


def device_name() -> str:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    procs = f", {world} processes (torchrun)" if world > 1 else ""
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}{procs}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads{procs}"


@dataclass
class RunCard:
    chapter: str
    profile: str
    seed: int
    device: str
    torch: str
    ddpm_lib: str
    python: str
    commit: str
    started: str
    config: dict = field(default_factory=dict)
    wall_time_s: float | None = None
    training: str = ""  # what train_cached did: models trained vs loaded from the weights cache
    omp: str = OMP_GUARD  # the OpenMP wait policy and who set it (see ddpm_lib/__init__.py)
    notes: list = field(default_factory=list)  # what differs from the preset: data fallbacks, ...

    def rows(self) -> list[tuple[str, str]]:
        wall = "running" if self.wall_time_s is None else f"{self.wall_time_s:.0f} s ({self.wall_time_s / 60:.1f} min)"
        return ([("chapter", self.chapter), ("profile", self.profile), ("seed", str(self.seed)),
                 ("device", self.device), ("torch", self.torch), ("ddpm_lib", self.ddpm_lib),
                 ("python", self.python), ("commit", self.commit), ("started (UTC)", self.started),
                 ("wall time", wall), ("OpenMP wait", self.omp)]
                + ([("training", self.training)] if self.training else [])
                + [("note", n) for n in self.notes])

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
                       for k, v in self.rows())
        cfg = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return (f"<table class='run-card'><caption>Run card</caption>{body}"
                f"<tr><th style='text-align:left'>config</th><td style='text-align:left'><code>{html.escape(cfg)}</code></td></tr></table>")

    def __repr__(self) -> str:
        lines = [f"{k:>14}: {v}" for k, v in self.rows()]
        lines.append(f"{'config':>14}: " + ", ".join(f"{k}={v}" for k, v in self.config.items()))
        return "Run card\n" + "\n".join(lines)


def training_summary(log: "train.RunLog") -> str:
    """'7 models: 6 trained (512 s), 1 loaded from the weights cache' from a ``train.RunLog``."""
    h = log.entries
    if not h:
        return ""
    trained = [r for r in h if not r["loaded"]]
    parts = [f"{len(trained)} trained ({sum(r['wall_s'] for r in trained):.0f} s)"]
    loaded = len(h) - len(trained)
    if loaded:
        parts.append(f"{loaded} loaded from the weights cache")
    resumed = [r for r in trained if r["resumed_from"]]
    if resumed:
        parts.append(f"{len(resumed)} resumed from a checkpoint")
    return f"{len(h)} model{'s' if len(h) != 1 else ''}: " + ", ".join(parts)


# Claim texts are written in code as plain ASCII ("x_t", "sigma^2", "L_simple", "eps-prediction");
# a claims table shows them as the chapters' prose writes them: Greek letters, sub- and
# superscripts, relation signs. A subscript is short (at most 6 characters) and hangs on one letter,
# so that code names ("n_prompts", "fixed_large", "consistency.rescaled_mu") stay as written.
_GREEK = {"alpha": "α", "beta": "β", "delta": "δ", "eps": "ε", "epsilon": "ε", "theta": "θ",
          "lambda": "λ", "mu": "μ", "sigma": "σ", "tau": "τ", "phi": "φ", "Sigma": "Σ", "Delta": "Δ"}
_MATH_RULES = [
    (re.compile(r"(?<![\w.])delta-sigma(?![A-Za-z])"), "Δσ"),
    (re.compile(r"(?<![\w.])beta_tilde(?!\w)"), "β\u0303"),
    (re.compile(r"(?<![\w.])mu~"), "μ\u0303"),
    (re.compile(r"(?<![\w.])(" + "|".join(_GREEK) + r")(?![A-Za-z])"), lambda m: _GREEK[m.group(1)]),
    (re.compile(r"(?<![\w.])([A-Za-zα-ωΑ-Ω])_(?:\{([^}]{1,12})\}|\(([^)]{1,8})\)|([A-Za-z0-9]{1,6}))(?!\w)"),
     lambda m: f"{m.group(1)}<sub>{m.group(2) or m.group(3) or m.group(4)}</sub>"),
    (re.compile(r"\^(\d+|\([^)]{1,12}\)|[A-Za-z])"), r"<sup>\1</sup>"),
    (re.compile(r"&lt;="), "≤"), (re.compile(r"&gt;="), "≥"), (re.compile(r"\+-"), "±"),
    (re.compile(r"-&gt;"), "→"),
]


def plain_math(text: str) -> str:
    """``text`` HTML-escaped, with its plain-ASCII math as HTML: ``sigma_t^2`` -> σ<sub>t</sub><sup>2</sup>,
    ``L_simple`` -> L<sub>simple</sub>, ``mu~`` -> μ̃, ``<=`` -> ≤, ``+-`` -> ±."""
    out = html.escape(str(text))
    for pattern, repl in _MATH_RULES:
        out = pattern.sub(repl, out)
    return out


def claims_html(claims: "list[Claim | dict]", gpu: "list[dict | None] | None" = None,
                compact: bool = False) -> str:
    """A claims table, the same in a chapter and in the book's ledger: one line per claim (its kind,
    the paper's number, ours, the coloured verdict, "(provisional)" where it is), the stated test,
    the why and what makes the verdict provisional in a collapsible detail under it; the setting
    shared by most rows once, above the table, saying how many rows it covers when not all (the
    others give theirs in their detail). Rows are ``Claim``s or the dicts a results file stores; ``gpu``, aligned with them, adds the gpu record's verdict of
    each (None where the gpu run has no such row) and its number and setting to the detail.
    ``compact`` (the ledger, read for its verdicts) moves the paper's number and ours into the
    detail too, so that each claim is one short line."""
    rows = [c.as_dict() if isinstance(c, Claim) else c for c in claims]
    settings = [str(r.get("setting", "")) for r in rows]
    common = max(settings, key=settings.count) if settings else ""  # a tie: the first row's order
    shown = ["kind", "holds"] if compact else ["kind", "paper", "ours", "holds"]
    heads = ["claim", *shown] + (["holds (GPU)"] if gpu is not None else [])
    head = "".join(f"<th style='{_CELL}text-align:left'>{h}</th>" for h in heads)

    def verdict(r: dict) -> str:
        h = str(r.get("holds", ""))
        return (f"<span class='claim-holds {verdict_class(h)}' style='color:{VERDICT_COLOURS.get(h, 'inherit')};"
                f"font-weight:600'>{html.escape(verdict_label(r, short=True))}</span>")

    out = []
    for i, r in enumerate(rows):
        g = gpu[i] if gpu is not None else None
        setting = str(r.get("setting", ""))
        detail = [("the paper", r.get("paper") if compact else ""), ("ours", r.get("ours") if compact else ""),
                  ("test", r.get("test")), ("setting", setting if setting != common else ""),
                  ("parts", "; ".join(f"{k}: {v}" for k, v in (r.get("parts") or {}).items())),
                  ("why / note", r.get("why")), ("amended after a record", r.get("amended")),
                  ("provisional", "; ".join(provisional_reasons(r)))]
        if g:
            detail.append(("on one GPU", "; ".join(str(g[k]) for k in ("ours", "setting", "why") if g.get(k))))
        detail = "".join(f"<div><b>{k}</b>: {html.escape(v) if k == 'setting' else plain_math(v)}</div>"
                         for k, v in detail if v)  # a setting holds code names: as written
        summary = "numbers, test and notes" if compact else "test and notes"
        values = {"kind": html.escape(r.get("kind") or "–"), "paper": plain_math(r.get("paper", "")),
                  "ours": plain_math(r.get("ours", "")), "holds": verdict(r)}
        cells = [plain_math(r.get("claim", "")) + (
                     f"<details><summary>{summary}</summary>{detail}</details>" if detail else ""),
                 *(values[k] for k in shown)]
        if gpu is not None:
            cells.append(verdict(g) if g else "not in the gpu run")
        out.append("<tr>" + "".join(f"<td style='{_CELL}text-align:left;vertical-align:top'>{v}</td>"
                                    for v in cells) + "</tr>")
    shared = settings.count(common)
    label = ("Setting" if shared == len(rows) else
             f"Setting of {shared} of the {len(rows)} claims (the others give theirs in their detail)")
    setting = f"<p class='claims-setting'><b>{label}</b>: {html.escape(common)}</p>" if common else ""
    return (f"{setting}<div class='table-scroll' style='overflow-x:auto;max-width:100%'><table class='claims' "
            f"style='border-collapse:collapse'><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table></div>")


def _show(kind: str, text: str, plain: str) -> None:
    """Display ``text`` as ``kind`` ("Markdown" or "HTML") in a notebook; print ``plain`` where
    IPython is absent."""
    try:
        from IPython import display
    except ImportError:
        print(plain)
        return
    display.display(getattr(display, kind)(text))


def see(text: str) -> None:
    """A chapter's "What we see" paragraph, written from this run's numbers (a code cell tagged
    ``hide-input`` calls it right after an experiment's figure or table), rendered as Markdown."""
    _show("Markdown", f"**What we see.** {text}", f"What we see. {text}")


def not_run(text: str) -> None:
    """An experiment this profile skips: one short note where its outputs would be (Markdown, so it
    wraps in the column), saying which setting skipped it and which profile runs it."""
    _show("Markdown", f"*Not run at this scale*: {text}", f"Not run at this scale: {text}")


def legend(title: str, items) -> None:
    """A figure's full legend, under it: the title, then one numbered line per item (a grid's
    captions, by column), so that no caption is cut to fit a figure's title."""
    lines = "\n".join(f"{i}. {html.escape(str(t))}" for i, t in enumerate(items, 1))
    _show("Markdown", f"*{title}*\n\n{lines}", f"{title}\n{lines}")


def show_source(*objs) -> None:
    """Display the source of library functions or classes, so a chapter shows the code that
    implements each equation right next to it."""
    import inspect

    text = "\n\n".join(f"```python\n{inspect.getsource(o).rstrip()}\n```" for o in objs)
    _show("Markdown", text, text)


_NUMBER = re.compile(r"^[-+\u2212]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?%?(\s*(\+-|\u00b1|\+/-)\s*\d*\.?\d+(e[-+]?\d+)?%?)?"
                     r"(\s*\[[^\]]*\])?$", re.I)
# Inline styles, so that a table reads the same in Jupyter, Colab and the book (whose CSS adds to them).
_CELL = "padding:0.25em 0.45em;border-bottom:1px solid #ddd;"
_INTERVAL = re.compile(r"^(.*\S)\s+(\[[^\]]*\])$")
_NOWRAP = "<span style='white-space:nowrap'>{}</span>"


def fmt(v, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` significant figures, everything else as text."""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}g}"
    return "" if v is None else str(v)


def _cell(tag: str, value, numeric: bool) -> str:
    """One cell. A number never breaks; an estimate with its interval, 'x [lo, hi]', may break
    before the bracket only, so a table too wide for the column folds its intervals onto a second
    line instead of running past it (a header wraps between words)."""
    style = f"{_CELL}text-align:{'right' if numeric else 'left'}"
    cls = " class='num'" if numeric else ""
    text = html.escape(value)
    if numeric and tag == "td":
        m = _INTERVAL.match(value)
        text = (" ".join(_NOWRAP.format(html.escape(g)) for g in m.groups()) if m
                else _NOWRAP.format(text))
    return f"<{tag}{cls} style='{style}'>{text}</{tag}>"


def table_html(rows: list[dict], caption: str = "", digits: int = 3) -> str:
    """An HTML table from a list of dicts (columns from the first row): padded cells, numbers (and
    'x +- y' intervals) right-aligned, floats to ``digits`` significant figures, inside a
    horizontally scrolling wrapper so a wide table never overflows the text column."""
    if not rows:
        return f"<p><em>{html.escape(caption)}: no rows</em></p>"
    cols = list(rows[0])
    cells = [[fmt(r.get(c, ""), digits) for c in cols] for r in rows]
    numeric = [all(_NUMBER.match(row[j].strip()) or not row[j].strip() for row in cells)
               and any(row[j].strip() for row in cells) for j in range(len(cols))]
    head = "".join(_cell("th", str(c), numeric[j]) for j, c in enumerate(cols))
    body = "".join("<tr>" + "".join(_cell("td", v, numeric[j]) for j, v in enumerate(row)) + "</tr>" for row in cells)
    cap = (f"<caption style='caption-side:top;text-align:left;padding:0.3em 0'>{html.escape(caption)}</caption>"
           if caption else "")
    return (f"<div class='table-scroll' style='overflow-x:auto;max-width:100%'><table class='results' "
            f"style='border-collapse:collapse'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def show_table(rows: list[dict], caption: str = "") -> None:
    """Display a results table (HTML in Jupyter, plain text elsewhere)."""
    _show("HTML", table_html(rows, caption), "\n".join([caption, *map(str, rows)]))


class Session:
    """Parameters, run card and results of one notebook run (see the module docstring)."""

    def __init__(self, chapter: str, namespace: dict):
        profiles.fields(chapter)  # fails early on an unknown chapter
        from . import viz

        viz.book_style()  # the figures' resolution and base font, the same in every chapter
        self.chapter, self.ns = chapter, namespace
        self.before = set(namespace)
        self.t0 = None
        self.card: RunCard | None = None
        self._handle = None

    def params(self) -> dict:
        new = {k: v for k, v in self.ns.items()
               if k not in self.before and not k.startswith("_") and not isinstance(v, Session)}
        valid = ["profile", "seed", *profiles.fields(self.chapter)]
        unknown = sorted(set(new) - set(valid))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for notebook {self.chapter}; valid choices: {valid}")
        return new

    def start(self):
        """Validate the parameters, resolve the profile, seed everything and display the run card."""
        p = self.params()
        prof = profiles.resolve(p.pop("profile", "auto"))
        profiles.require_device(prof)  # the gpu profile without CUDA would run for hours
        p = profiles.validate(self.chapter, p)  # names, types and ranges, before any work
        # a run with parameters of its own (anything but the profile and seed 0) is not the preset's run:
        # its results go to runs/results/, never over the book's (see results_path)
        self.overrides = {k: v for k, v in p.items() if not (k == "seed" and v == 0)}
        seed = p.pop("seed", 0)
        cfg = profiles.get(self.chapter, prof, **p)  # the preset as a whole (cross-field rules)
        self.profile = prof
        self._check_results_folder()
        torch.manual_seed(seed)
        self.t0 = time.time()
        root = repo_root()
        self.card = RunCard(
            chapter=self.chapter, profile=prof, seed=seed, device=device_name(), torch=torch.__version__,
            ddpm_lib=__version__, python=sys.version.split()[0], commit=git_commit(root),
            started=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"), config=asdict(cfg))
        self.profile, self.seed, self.cfg = prof, seed, cfg
        if self.overrides and prof in ("cpu", "gpu"):
            self.card.notes.append(f"parameters set for this run: {self.overrides}; its results go to runs/results/, "
                                   "not the book's")
        if prof == "gpu":  # the estimated device time of this config, "untested" until a gpu record exists
            from . import budget

            self.card.notes.append(budget.card_note(self.chapter, cfg, root or Path.cwd()))
        from . import train

        self.runs = train.RunLog().open()  # what train_cached does from here on, for the run card
        self._show_card()
        return cfg

    def note(self, text: str) -> None:
        """Record something a reader of the results must know (a fallback, a skipped step) on the run card."""
        self.card.notes.append(text)
        self._show_card()

    def load_pair(self, name: str, image_size: int | None, fallback: str, **kw):
        """(train, test) splits of data set ``name``; when it is an unreachable Hub id, of ``fallback``
        instead, said loudly and recorded on the run card. Any other failure (a missing folder, a
        typo) is an error."""
        from . import data

        try:
            return (data.load(name, image_size=image_size, **kw),
                    data.load(name, split="test", image_size=image_size, **{k: v for k, v in kw.items() if k != "n"}))
        except data.DatasetUnavailable as e:
            if fallback == name:
                raise
            msg = f"data {name!r} is unavailable ({e}); this run uses {fallback!r} instead"
            print(f"\n{'!' * 80}\nWARNING: {msg}\n{'!' * 80}\n", file=sys.stderr)
            self.note(f"data fallback: {name} -> {fallback} ({name} unreachable)")
            return self.load_pair(fallback, image_size, fallback, **kw)

    def _show_card(self):
        if rank() != 0:
            return
        try:
            from IPython.display import display

            if self._handle is None:
                self._handle = display(self.card, display_id=True)
            else:
                self._handle.update(self.card)
        except Exception:
            print(repr(self.card))

    def elapsed(self) -> float:
        return time.time() - (self.t0 or time.time())

    def _check_results_folder(self) -> None:
        """Fail at start, not in the last cell after all the work, when the results cannot be written."""
        if rank() != 0:
            return
        path = self.results_path()
        folder = path.parent  # probed where it exists, never created here: a run that stops early leaves no folder
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            with tempfile.TemporaryFile(dir=folder, prefix=f".{self.chapter}.probe."):
                pass
        except OSError as e:
            raise PermissionError(f"the results folder {path.parent} cannot be written ({e.strerror or e}): set "
                                  "DDPM_RESULTS_DIR to a writable folder") from e
        if os.environ.get("DDPM_RESULTS_DIR"):
            print(f"results will be written to {path}")

    def results_path(self) -> Path:
        """Where ``finish`` writes: ``DDPM_RESULTS_DIR`` (absolute; a relative one is taken from the
        working directory), else the book's results (a preset's cpu or gpu run) or runs/results/."""
        root = repo_root() or Path.cwd()
        preset_run = self.profile in ("cpu", "gpu") and not getattr(self, "overrides", {})
        if not preset_run:
            sub = Path("runs/results")
        else:  # a gpu record sits beside the cpu one, never over it
            sub = Path("book/results/gpu") if self.profile == "gpu" else Path("book/results")
        override = os.environ.get("DDPM_RESULTS_DIR")
        base = Path(override).expanduser().absolute() if override else root / sub
        return base / f"{self.chapter}.json"

    def finish(self, claims: list[Claim], numbers: "dict | Record | None" = None) -> None:
        """Display the claims table, write the results file (``results_path()``), and close the run card
        (rank 0 only). Returns nothing, so that no path of the recording machine is shown as a result.

        ``numbers``: the chapter's typed ``Record`` (stored whole, so that ``make claims`` re-derives the
        verdicts from it), or a plain dict of numbers (chapters not yet on the typed seam)."""
        self.card.wall_time_s = round(self.elapsed(), 1)
        self.card.training = training_summary(self.runs)
        path = self.results_path()
        if rank() != 0:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        from .claims import encode

        payload = dict(run_card=asdict(self.card), claims=[c.as_dict() for c in claims])
        if isinstance(numbers, Record):
            payload.update(record_type=type(numbers).__name__, record=numbers.to_json())
        else:
            payload["numbers"] = encode(numbers or {})
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=str))
        os.replace(tmp, path)
        self._show_card()
        _show("HTML", claims_html(claims), "\n".join(map(str, claims)))
        root = repo_root()
        print(f"results written to {path.relative_to(root) if root and path.is_relative_to(root) else path.name}")
