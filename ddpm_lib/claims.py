"""How a measurement becomes a verdict, the same way in every chapter (../shared/CHAPTER_GUIDE.md).

A chapter's claims are small named functions, each returning one ``Claim`` row from the chapter's
typed ``Record`` (the measurements its claims read, filled cell by cell by the notebook and stored
in the results file, so that ``make claims`` can re-derive every verdict without re-training).

The calculus:

* a one-sided claim about a difference ``d`` (``supports(d, "<")``): yes when its whole interval
  lies on the claimed side of 0, no when it lies on the other side, else not significant;
* a claim that needs all its parts takes its **weakest part** (``weakest``): any no -> no; else
  any did-not-train -> did not train; else any not significant -> not significant; else yes. A
  paper statement that is several separate findings is several rows, not one "partly" row;
* an equivalence claim (``equivalent``) is decided against a margin stated before the run; a
  margin below the interval's half-width is a test that cannot pass, refused (``CannotDecide``);
* a "not significant" row says the smallest effect it could have detected (``mde``);
* claim-bearing bootstrap intervals carry >= ``MIN_BOOTSTRAP`` replicates (checked on the row's
  ``evidence``); a claim about a training outcome with fewer than ``MIN_SEEDS`` training seeds is
  provisional (``Claim.seeds``); a family of small-effect tests is Holm-corrected (``holm``).

Every row has a ``kind``: ``paper`` (the paper states it), ``check`` (a gate or sanity test the
book adds), ``extension`` (the book's own question) or ``deviation`` (a measured reason to depart
from the paper). Only paper rows count as reproductions in the ledger.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Callable

from .stats import Interval

KINDS = ("paper", "check", "extension", "deviation")
VERDICTS = ("yes", "no", "not significant", "did not train", "n/a")
# "partly" was the second edition's verdict for mixed parts; it survives only in results recorded
# before the calculus (the ledger shows them as such until the chapter is re-recorded).
LEGACY_VERDICTS = ("partly",)
ORDER = ("no", "did not train", "not significant", "yes")  # weakest first
# The guide's did-not-train gates: a bound worse than a uniform coder of 8-bit data, or an FD above
# 10x the real-vs-real floor (judged on a metric other than the one the claim is about).
BPD_GATE = 8.0
FD_GATE = 10
MIN_BOOTSTRAP = 2000
MIN_SEEDS = 3
Z_POWER = 0.8416  # the normal quantile of 80% power, for the minimal detectable effect


class CannotDecide(ValueError):
    """A test that cannot pass (or cannot fail) at this n, found before its verdict is drawn."""


class Missing(LookupError):
    """A claim needs record fields that were not measured (or that a record written before the
    typed seam does not store): ``make claims`` then keeps the recorded row and says why."""


# ---- the calculus -------------------------------------------------------------------------------
def supports(d: Interval, side: str) -> str:
    """The verdict on a claim that ``d`` (a difference) is below (``side="<"``) or above (``">"``) 0:
    yes when the whole interval lies on that side, no when it lies on the other, else not
    significant."""
    if side not in ("<", ">"):
        raise ValueError(f"side must be '<' or '>', got {side!r}")
    below, above = d.hi < 0, d.lo > 0
    if not (below or above):
        return "not significant"
    return "yes" if below == (side == "<") else "no"


def weakest(*parts: str) -> str:
    """The verdict of a claim that needs all its parts: the weakest of them (``ORDER``). A part
    that was not measured (n/a) makes the conjunction untestable: leave it out or say n/a."""
    if not parts:
        raise ValueError("weakest() of no parts")
    bad = [p for p in parts if p not in ORDER]
    if bad:
        raise ValueError(f"a conjunction's parts must be among {list(ORDER)}, got {bad}")
    return min(parts, key=ORDER.index)


def equivalent(d: Interval, margin: float) -> str:
    """Two-sided equivalence within a margin stated before the run: yes when the interval of the
    difference lies inside (-margin, margin), no when it lies wholly outside, else not
    significant. A margin smaller than the interval's half-width can never give yes: refused."""
    half = (d.hi - d.lo) / 2
    if margin <= half:
        raise CannotDecide(f"equivalence margin {margin:.3g} <= the interval's half-width {half:.3g}: "
                           "this test cannot pass at this n; size n to the margin or drop the test")
    if -margin < d.lo and d.hi < margin:
        return "yes"
    return "no" if d.lo >= margin or d.hi <= -margin else "not significant"


def below(d: Interval, margin: float) -> str:
    """One-sided non-inferiority: yes when the whole interval of ``d`` lies below ``margin``, no
    when it lies above it, else not significant."""
    return "yes" if d.hi < margin else ("no" if d.lo > margin else "not significant")


def equivalence(d: Interval, margin: float) -> tuple[str, str]:
    """(verdict, note) of ``equivalent``: a test that cannot pass at this n is 'not significant' and
    its note says why (for a record whose n was fixed before the calculus); an undecided one says
    what it could have detected."""
    try:
        holds = equivalent(d, margin)
    except CannotDecide as e:
        return "not significant", str(e)
    return holds, (not_significant_why(d, against=f"the margin +-{margin:.3g}") if holds == "not significant" else "")


def one_sided(d: Interval, side: str, unit: str = "") -> tuple[str, str]:
    """(verdict, note) of ``supports``: a not-significant note says the smallest detectable effect."""
    v = supports(d, side)
    return v, (not_significant_why(d, unit) if v == "not significant" else "")


def shifted(d: Interval, by: float) -> Interval:
    """``d - by``: a difference against a margin or a fixed threshold (chance, 50%) instead of 0;
    its p-value (of 0) no longer applies."""
    return dataclasses.replace(d, est=d.est - by, lo=d.lo - by, hi=d.hi - by, p=None)


def flipped(d: Interval) -> Interval:
    """-d: b - a from the interval of a - b (a paired percentile or t interval negates exactly)."""
    return dataclasses.replace(d, est=-d.est, lo=-d.hi, hi=-d.lo)


def pair_of(diffs: dict, a, b, what: str, name=str) -> Interval:
    """a - b from a dict of paired differences ``{(a, b): Interval}`` stored either way round;
    ``Missing`` naming it when it is not stored."""
    if (a, b) in diffs:
        return diffs[(a, b)]
    if (b, a) in diffs:
        return flipped(diffs[(b, a)])
    raise Missing(f"Record lacks {what}[{name(a)!r}, {name(b)!r}] (not stored)")


def why_parts(parts: dict, evidence: dict, unit: str = "", margins: dict | None = None) -> str:
    """The note of a conjunction: each part that did not hold; an undecided one with the smallest
    effect its test could have detected (``margins``: parts tested against a margin, not 0)."""
    out = []
    for k, v in parts.items():
        if v == "not significant" and k in evidence:
            m = (margins or {}).get(k)
            against = "0" if m is None else f"the margin {m:.3g}"
            out.append(f"{k}: not significant ({not_significant_why(evidence[k], unit, against=against)})")
        elif v != "yes":
            out.append(f"{k}: {v}")
    return "; ".join(out)


def gated(row: "Claim", reason: str) -> "Claim":
    """A row whose model did not train (``reason``: which, by which gate): 'did not train', saying
    what its test would have read, which says nothing about the paper's claim."""
    return dataclasses.replace(row, holds="did not train", parts={}, why=(
        f"{reason}; the test would read '{row.holds}', which says nothing about the paper's claim"))


def mde(d: Interval, power: float = 0.8) -> float:
    """The smallest true effect this interval's test would detect with ``power`` (two-sided, at the
    interval's level), read off its half-width: (q_level + q_power) times its standard error, with
    Student-t quantiles for an interval over few seeds or items (t, t-paired, seeds), else normal."""
    from scipy import stats as st

    if d.method in ("t", "t-paired", "seeds") and d.n >= 2:
        q = lambda p: float(st.t.ppf(p, d.n - 1))  # noqa: E731
    else:
        q = lambda p: float(st.norm.ppf(p))  # noqa: E731
    se = (d.hi - d.lo) / (2 * q(0.5 + d.level / 2))
    return (q(0.5 + d.level / 2) + q(power)) * se


def can_decide(expected_halfwidth: float, effect: float) -> bool:
    """Before a run: can a test whose interval is expected to be +-``expected_halfwidth`` detect an
    effect of ``effect`` (the paper's effect at our scale, or a margin)? False means: size n first."""
    return abs(effect) > expected_halfwidth


def holm(pvalues: dict, alpha: float = 0.05) -> dict:
    """Holm's step-down correction of a family of tests: {name: True when rejected at family-wise
    level ``alpha``}."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m, out, still = len(order), {}, True
    for i, k in enumerate(order):
        still = still and pvalues[k] <= alpha / (m - i)
        out[k] = still
    return out


def holm_verdicts(family: dict, side: str, alpha: float = 0.05) -> dict:
    """Verdicts of a family of one-sided difference claims (``{name: Interval with p}``), each
    significant only when Holm's correction rejects it: yes / no by the estimate's side, else not
    significant."""
    missing = [k for k, d in family.items() if d.p is None]
    if missing:
        raise ValueError(f"Holm needs a p-value on every interval; none on {missing}")
    rejected = holm({k: d.p for k, d in family.items()}, alpha)
    out = {}
    for k, d in family.items():
        if not rejected[k]:
            out[k] = "not significant"
        else:
            out[k] = "yes" if (d.est < 0) == (side == "<") else "no"
    return out


# ---- one row of a claims table ------------------------------------------------------------------
@dataclass
class Claim:
    """One row of a chapter's claims table.

    ``evidence`` holds the intervals the verdict compares (bootstrap ones are checked for
    ``MIN_BOOTSTRAP`` replicates); ``parts`` the verdicts of a conjunction's parts (``holds`` must be
    their weakest); ``seeds`` the training seeds per arm of a claim about a training outcome (fewer
    than ``MIN_SEEDS``: provisional); ``amended`` says how a test or gate changed after a record
    whose verdict was seen, with the verdict under the original rule."""

    claim: str
    paper: str  # the paper's number or statement, with its provenance
    ours: str  # what we measured
    setting: str  # our setting (data, size, budget)
    holds: str
    why: str = ""  # why, where it does not hold; for "not significant", the smallest detectable effect
    kind: str = ""  # one of KINDS ("" only in results recorded before kinds existed)
    test: str = ""  # the test, stated before the run
    parts: dict = field(default_factory=dict)
    seeds: int | None = None
    amended: str = ""
    evidence: dict = field(default_factory=dict, repr=False)
    name: str = ""  # the rule that made the row (``derive`` sets it): tests and ``make claims`` name rows by it

    def __post_init__(self):
        allowed = VERDICTS + (LEGACY_VERDICTS if not self.kind else ())
        if self.holds not in allowed:
            raise ValueError(f"holds must be one of {list(VERDICTS)}, got {self.holds!r}")
        if self.kind and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.parts and self.holds != weakest(*self.parts.values()):
            raise ValueError(f"a conjunction takes its weakest part: parts {self.parts} give "
                             f"{weakest(*self.parts.values())!r}, not {self.holds!r}")
        for name, d in self.evidence.items():
            if isinstance(d, Interval) and d.method == "unpaired":
                raise ValueError(f"{name}: two intervals compared unpaired cannot decide a claim; use the "
                                 "paired statistic (stats.paired_rate_diff, stats.diff_ci, stats.paired_mean_diff)")
        if self.seeds is not None and self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")

    @property
    def provisional_because(self) -> list[str]:
        """Why a yes / no / not-significant verdict is provisional: a claim about a training outcome
        from fewer than MIN_SEEDS seeds per arm; a bootstrap interval with fewer than MIN_BOOTSTRAP
        replicates."""
        if self.holds not in ("yes", "no", "not significant"):
            return []
        out = []
        if self.seeds is not None and self.seeds < MIN_SEEDS:
            out.append(f"{self.seeds} training seed{'s' if self.seeds != 1 else ''} per arm (< {MIN_SEEDS})")
        few = sorted({d.n for d in self.evidence.values()
                      if isinstance(d, Interval) and d.method.startswith("bootstrap") and d.n < MIN_BOOTSTRAP})
        if few:
            out.append(f"B = {', '.join(map(str, few))} bootstrap replicates (< {MIN_BOOTSTRAP:,})")
        return out

    @property
    def provisional(self) -> bool:
        return bool(self.provisional_because)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("name", "claim", "paper", "ours", "setting", "holds", "why", "kind",
                                           "test", "parts", "seeds", "amended")}
        d["provisional"] = self.provisional_because
        d["evidence"] = {k: encode(v) for k, v in self.evidence.items()}
        return d


# A verdict's colour, the same in a chapter's table (inline, so Jupyter and Colab show it) and in the
# ledger (book/_ext/static/claims.css, by the class name ``verdict_class`` gives).
VERDICT_COLOURS = {"yes": "#1a7f37", "no": "#cf222e", "not significant": "#6e7781", "did not train": "#8250df",
                   "n/a": "#6e7781", "partly": "#9a6700"}


def verdict_class(holds: str) -> str:
    """The CSS class of a verdict: 'claim-holds-not-significant', 'claim-holds-na', ..."""
    return "claim-holds-" + re.sub(r"[^a-z]+", "-", holds.lower().replace("/", "")).strip("-")


def provisional_reasons(c: Claim | dict) -> list[str]:
    """Why a verdict is provisional ([] if it is not), from a ``Claim`` or a stored row."""
    why = (c.get("provisional") or []) if isinstance(c, dict) else c.provisional_because
    return ["see the row"] if why is True else list(why)  # True: written before reasons were stored


def verdict_label(c: Claim | dict, short: bool = False) -> str:
    """The verdict as a reader sees it: 'yes', or 'yes (provisional: 1 training seed per arm (< 3))';
    ``short`` drops the reasons ('yes (provisional)') for a table that gives them in its detail."""
    holds = c.get("holds", "") if isinstance(c, dict) else c.holds
    why = provisional_reasons(c)
    if not why:
        return holds
    return f"{holds} (provisional)" if short else f"{holds} (provisional: {'; '.join(why)})"


def not_significant_why(d: Interval, unit: str = "", against: str = "0") -> str:
    """The note of a not-significant row: the smallest effect its test could have detected."""
    if d.hi - d.lo <= 0:
        return f"the interval has no width at this n (all estimates equal), so it cannot be told from {against}"
    return (f"the interval straddles {against}; it could detect an effect of about {mde(d):.3g}{unit} or more "
            "(80% power)")


# ---- the typed seam between a notebook and its chapter -------------------------------------------
class Record:
    """Base of a chapter's record: a dataclass whose fields are what its claims read. A notebook
    sets the fields cell by cell; a misspelt name fails when it is set. ``to_json`` stores it once,
    when the results file is written (intervals as intervals, sweeps keyed by value)."""

    def __setattr__(self, name, value):
        names = [f.name for f in dataclasses.fields(self)]
        if name not in names:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; its fields: {names}")
        object.__setattr__(self, name, value)

    def missing(self) -> list[str]:
        """The fields still unset (None)."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is None]

    def need(self, *names: str):
        """The values of ``names`` (one value for one name); ``Missing`` naming those still unset."""
        gone = [n for n in names if getattr(self, n) is None]
        if gone:
            raise Missing(f"{type(self).__name__} lacks {gone}")
        vals = tuple(getattr(self, n) for n in names)
        return vals[0] if len(vals) == 1 else vals

    def to_json(self) -> dict:
        return {f.name: encode(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: stored fields {unknown} are not in the record ({sorted(names)})")
        return cls(**{k: decode(v) for k, v in d.items()})


def encode(v):
    """A JSON-safe value: an Interval as ``{"~": "interval", ...}``, a dict with non-string keys or a
    tuple tagged so that ``decode`` gives them back; arrays and tensors as lists."""
    if isinstance(v, Interval):
        return {"~": "interval", **v.as_dict()}
    if isinstance(v, Claim):
        return v.as_dict()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: encode(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {k: encode(x) for k, x in v.items()}
        return {"~": "items", "items": [[encode(k), encode(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"~": "tuple", "items": [encode(x) for x in v]}
    if isinstance(v, list):
        return [encode(x) for x in v]
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy arrays and scalars, tensors
        return encode(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return {"~": "float", "value": repr(v)}
    return v


def decode(v):
    if isinstance(v, list):
        return [decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    tag = v.get("~")
    if tag == "interval":
        return Interval.of({k: x for k, x in v.items() if k != "~"})
    if tag == "items":
        return {_key(decode(k)): decode(x) for k, x in v["items"]}
    if tag == "tuple":
        return tuple(decode(x) for x in v["items"])
    if tag == "float":
        return float(v["value"])
    return {k: decode(x) for k, x in v.items()}


def _key(k):
    return tuple(k) if isinstance(k, list) else k


# ---- a chapter's claims --------------------------------------------------------------------------
def derive(rules: list[Callable], record, strict: bool = True) -> list:
    """The claims table: each rule (a small function of the record returning one Claim, or None
    where this profile does not test it), in order, each row named after its rule. ``strict=False``
    (re-deriving an old record) puts the ``Missing`` error in place of a rule that cannot run."""
    rows = []
    for rule in rules:
        try:
            row = rule(record)
        except Missing as e:
            if strict:
                raise
            rows.append(Missing(f"{rule.__name__}: {e}"))
            continue
        if row is not None:
            row.name = row.name or rule.__name__
            rows.append(row)
    return rows


def tally(claims: list[dict], kind: str | None = "paper") -> dict:
    """{verdict: count} of the rows of ``kind`` (None: all rows); provisional verdicts counted apart."""
    out: dict = {}
    for c in claims:
        if kind is not None and c.get("kind") != kind:
            continue
        key = c.get("holds", "n/a") + (" (provisional)" if c.get("provisional") else "")
        out[key] = out.get(key, 0) + 1
    return out
