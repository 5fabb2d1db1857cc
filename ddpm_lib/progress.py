"""Progress bars that pick the notebook widget inside Jupyter and plain text elsewhere.

Set ``DDPM_PLAIN_PROGRESS=1`` for headless runs (papermill, nbval): executed notebooks then keep
a readable text record instead of a widget placeholder that no front-end will draw. ``make record``
sets ``DDPM_NO_PROGRESS=1``: the notebook committed for the book shows no progress bars.
"""
from __future__ import annotations

import os
import sys


def _in_notebook() -> bool:
    if os.environ.get("DDPM_PLAIN_PROGRESS"):  # set by `make run` and the tests (papermill, nbval)
        return False
    try:
        import importlib.util

        from IPython import get_ipython

        shell = get_ipython()
        return (shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"
                and importlib.util.find_spec("ipywidgets") is not None)
    except Exception:
        return False


def tqdm(*args, **kwargs):
    """``tqdm.auto`` behaviour, minus widgets where no front-end can show them; no bar at all under
    ``DDPM_NO_PROGRESS=1`` (set by ``make record``: a committed notebook carries no bar fragments)."""
    if os.environ.get("DDPM_NO_PROGRESS"):
        kwargs["disable"] = True
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 1.0)
    if _in_notebook():
        from tqdm.notebook import tqdm as bar
    else:
        from tqdm import tqdm as bar

        kwargs.setdefault("file", sys.stderr)
    return bar(*args, **kwargs)
