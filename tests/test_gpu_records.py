"""The gpu records: a chapter run with the gpu profile is kept beside its cpu record, never over it.

* ``tools/run_notebook.py --record --profile gpu`` writes ``book/gpu/<chapter>.ipynb``, titled as the
  chapter on one GPU, pointing to the cpu record, with links that still resolve from book/gpu/;
* the claims ledger (``book/_ext/claims_ledger.py``) puts the gpu verdicts beside the cpu ones, claim by
  claim, and the gpu page lists the records (a small Sphinx build with -W, on made-up results);
* ``tools/device_session.sh``, the one command run on a lent GPU machine, checks its imports, names a
  chapter that fails without stopping, and stops a chapter at CHAPTER_LIMIT_S leaving no kernel behind
  (DEVICE=cpu, the benchmark off; the full dry run with the benchmark is a documented command in
  tools/device_session.sh).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import claims_ledger  # noqa: E402
import run_notebook  # noqa: E402


def test_a_gpu_record_is_titled_and_points_to_the_cpu_record():
    src = ROOT / "notebooks" / "00_forward_process.ipynb"
    nb = json.loads(src.read_text())
    rec = run_notebook.as_gpu_record(nb, "00_forward_process")
    assert json.loads(src.read_text()) == nb, "the cpu notebook must not change"
    assert "jupytext" not in rec["metadata"] and len(rec["cells"]) == len(nb["cells"]) + 1
    title = "".join(rec["cells"][0]["source"]).splitlines()[0]
    assert title.startswith("# ") and title.endswith("(on one GPU)")
    note = rec["cells"][1]["source"]
    assert "{doc}`/notebooks/00_forward_process`" in note and "PROFILE=gpu" in note
    # every relative link of a markdown cell resolves from book/gpu/, where the record lives
    for cell in rec["cells"]:
        if cell["cell_type"] == "markdown":
            for target in re.findall(r"\]\((?!https?:|#)([^)\s]+)\)", "".join(cell["source"])):
                assert (ROOT / "book" / "gpu" / target).resolve().exists(), target
    # code cells and their outputs are the run's, untouched
    assert [c for c in rec["cells"] if c["cell_type"] == "code"] == [c for c in nb["cells"] if c["cell_type"] == "code"]
    with pytest.raises(SystemExit, match="no markdown title"):
        run_notebook.as_gpu_record({"metadata": {}, "cells": [{"cell_type": "code", "source": "", "outputs": []}]}, "x")


def _c(text, holds="yes", ours="1"):
    return {"claim": text, "paper": "p", "ours": ours, "setting": "s", "holds": holds, "why": ""}


def test_gpu_claims_sit_beside_the_cpu_claims_of_the_same_text_or_place():
    cpu = [_c("a"), _c("b on digits"), _c("c")]
    # same text; a text that names the profile's data set pairs by position; a gpu-only claim gets a row
    gpu = [_c("a", "no"), _c("b on mnist", "partly"), _c("c", "n/a"), _c("d, gpu only")]
    pairs = claims_ledger.pair_claims(cpu, gpu)
    assert [(c and c["claim"], g and g["claim"]) for c, g in pairs] == [("a", "a"), ("b on digits", None), ("c", "c"),
                                                                        (None, "b on mnist"), (None, "d, gpu only")]
    pairs = claims_ledger.pair_claims(cpu, gpu[:3])  # equally long: the odd one pairs by place
    assert [(c["claim"], g["claim"]) for c, g in pairs] == [("a", "a"), ("b on digits", "b on mnist"), ("c", "c")]
    assert claims_ledger.pair_claims(cpu, [gpu[2], gpu[0], _c("x")])[0][1]["claim"] == "a"  # order-free by text
    assert all(g is None for _, g in claims_ledger.pair_claims(cpu, None))


def _results(folder: Path, chapter: str, profile: str, claims: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    card = {"chapter": chapter, "profile": profile, "device": f"{profile}-device-x", "wall_time_s": 321.0,
            "started": "2026-12-01 10:00", "torch": "t", "ddpm_lib": "0.1.0", "commit": "abc"}
    (folder / f"{chapter}.json").write_text(json.dumps({"run_card": card, "claims": claims, "numbers": {}}))


def _build(src: Path) -> str:
    (src / "conf.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
                                 "extensions = ['claims_ledger']\nexclude_patterns = ['_build']\n")
    (src / "index.rst").write_text("Ledger\n======\n\n.. claims-ledger::\n   :results: results\n\n"
                                   "Records\n-------\n\n.. gpu-records::\n   :results: results/gpu\n")
    out = src / "_build"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "-q", "-E", str(src), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return (out / "index.html").read_text()


def test_the_ledger_shows_a_gpu_column_and_the_gpu_page_lists_the_records(tmp_path):
    html = _build_with(tmp_path / "empty", gpu=False)
    assert "holds (GPU)" not in html and "not recorded" in html
    assert "No chapter has been recorded on a GPU yet" in html

    html = _build_with(tmp_path / "both", gpu=True)
    assert "holds (GPU)" in html and "gpu-device-x" in html and "cpu-device-x" in html
    text = re.sub(r"<[^>]+>", " ", html)
    assert "a claim only the gpu run tests" in text and "not in the gpu run" in text
    assert re.search(r"claim-holds-no\b", html), "the gpu verdict 'no' is not shown"
    # the gpu page's table: one row per record, with its tally
    assert "chapter on one GPU" in html and re.search(r"1 yes\s*·\s*1 no\s*·\s*1 n/a", text)
    # a chapter recorded on a GPU only still gets its section
    assert "claims-09-gpu-only" in html


def _build_with(src: Path, gpu: bool) -> str:
    src.mkdir(parents=True)
    _results(src / "results", "02_x", "cpu", [_c("same claim"), _c("cpu only claim", "partly")])
    if gpu:
        _results(src / "results" / "gpu", "02_x", "gpu",
                 [_c("same claim", "no", "7"), _c("a claim only the gpu run tests", "n/a"), _c("third", "yes")])
        _results(src / "results" / "gpu", "09_gpu_only", "gpu", [_c("z")])
    return _build(src)


def test_the_device_session_checks_its_tools_and_names_a_chapter_that_fails(tmp_path):
    env = dict(os.environ, DEVICE="cpu", BENCH="0", OUT=str(tmp_path / "out"), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "tools" / "device_session.sh"), "no_such_chapter"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "device-session: torch" in out and "no_such_chapter: failed" in out and "valid choices" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["device-session.log"]
    assert not (ROOT / "book" / "gpu" / "no_such_chapter.ipynb").exists()


def _copy_checkout(dest: Path) -> Path:
    """The working tree's tracked and unignored files in ``dest``: a session that records writes book/gpu/
    there, never into the checkout the tests run from."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _processes_with(marker: str) -> list[int]:
    """This user's processes whose environment holds ``marker`` (the session's children, kernels included)."""
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in env.read_bytes().split(b"\0"):
                found.append(int(env.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the session's processes")
def test_the_device_session_stops_a_chapter_at_its_limit_and_leaves_no_kernel(tmp_path):
    """CHAPTER_LIMIT_S ends a chapter that runs over (here the gpu preset of 02 on a CPU, stopped after 20 s):
    the session names it, goes on, brings back only what finished (the log), and the chapter's kernel is
    gone (it polls its parent) without a pkill by name, which would end other users' kernels."""
    repo = _copy_checkout(tmp_path / "repo")
    marker = f"DDPM_TEST_SESSION={uuid.uuid4().hex}"
    env = dict(os.environ, DEVICE="cpu", BENCH="0", CHAPTER_LIMIT_S="20", OUT=str(tmp_path / "out"),
               PYTHON=sys.executable, DDPM_CACHE=str(tmp_path / "cache"), **dict([marker.split("=")]))
    t0 = time.time()
    proc = subprocess.run(["bash", str(repo / "tools" / "device_session.sh"), "02"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    stopped = re.search(r"device-session: 02: out of time after (\d+) s \(CHAPTER_LIMIT_S=20\); nothing recorded", out)
    assert stopped and 20 <= int(stopped.group(1)) < 60, out
    assert time.time() - t0 < 150, "the limit did not stop the chapter"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["device-session.log"]
    assert not (repo / "book" / "gpu" / "02_ddpm.ipynb").exists() and not (repo / "book" / "results" / "gpu").exists()
    deadline = time.time() + 10
    while _processes_with(marker) and time.time() < deadline:
        time.sleep(0.5)
    assert not _processes_with(marker), "a process of the stopped chapter (its kernel?) outlived the session"


def test_every_committed_gpu_record_is_whole():
    """A gpu record comes as a pair (the executed notebook and its results), made by a real gpu run,
    under the notebook size limit; none yet is fine (no GPU has been lent)."""
    notebooks = {p.stem for p in (ROOT / "book" / "gpu").glob("*.ipynb")}
    results = {p.stem for p in (ROOT / "book" / "results" / "gpu").glob("*.json")}
    assert notebooks == results, f"gpu records without results: {notebooks - results}; results without: {results - notebooks}"
    chapters = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    for stem in notebooks:
        assert stem in chapters, f"book/gpu/{stem}.ipynb is not a chapter"
        path = ROOT / "book" / "gpu" / f"{stem}.ipynb"
        assert path.stat().st_size < 5e6, f"{path.name} weighs over 5 MB"
        nb = json.loads(path.read_text())
        assert "".join(nb["cells"][0]["source"]).splitlines()[0].endswith("(on one GPU)")
        card = json.loads((ROOT / "book" / "results" / "gpu" / f"{stem}.json").read_text())["run_card"]
        assert card["profile"] == "gpu" and card["device"].startswith("cuda"), f"{stem}: not a gpu run on a GPU: {card}"
