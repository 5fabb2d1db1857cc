"""Fixtures shared by the notebook and book tests.

* ``notebook_env``: the environment every executed notebook gets: offline, plain progress bars,
  results written to a temporary folder (never book/results/), and one weights cache for the whole
  test session, so that nbval reuses what the papermill run of the same notebook trained.
* ``built_book``: the book built once per session with ``jupyter-book build -W`` into
  ``_build/test/``; the browser test saves its screenshots next to it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
TEST_BUILD = ROOT / "_build" / "test"


def notebooks() -> list[Path]:
    """Every chapter notebook, found anew on each run: a new chapter is tested without editing tests."""
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def yet_to_fix(stem: str, listed: set[str], set_name: str, problems: list, describe) -> str | None:
    """The rule of a ``*_WIDE_YET`` set (chapters recorded before a check existed): a chapter in the set
    must still have ``problems``, else it leaves the set (so the set only shrinks); any other chapter
    must have none, and ``describe(problems)`` says what is wrong. Returns the failure, or None."""
    if stem in listed:
        return None if problems else f"{stem}: nothing left to fix here: remove it from {set_name}"
    return describe(problems) if problems else None


def tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="session")
def notebook_env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("notebooks")
    env = dict(os.environ)
    env.pop("DDPM_PROFILE", None)
    env.pop("OMP_WAIT_POLICY", None)  # each notebook must set it itself (it imports ddpm_lib before torch)
    env.update(
        DDPM_CACHE=str(base / "cache"),
        DDPM_RESULTS_DIR=str(base / "results"),
        DDPM_PLAIN_PROGRESS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONDONTWRITEBYTECODE="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@pytest.fixture(scope="session")
def built_book() -> Path:
    """Build the book from the committed notebooks (no execution) with warnings as errors."""
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", "-W", "--keep-going",
           "--path-output", str(TEST_BUILD), str(ROOT)]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    wall = time.time() - t0
    html = TEST_BUILD / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").exists():
        pytest.fail(f"jupyter-book build -W failed (exit {proc.returncode}, {wall:.0f} s):\n"
                    f"{tail(proc.stdout + proc.stderr, 80)}", pytrace=False)
    print(f"\nbook built in {wall:.1f} s: {html / 'index.html'}")
    return html
