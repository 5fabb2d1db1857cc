"""The book loads nothing from outside: MathJax ships with it, and thebe's CDN loader is dropped.

**MathJax.** Sphinx loads MathJax from a CDN by default. This extension (and, run as a script, ``make mathjax``)
puts MathJax's browser build (the ``es5`` folder of the npm package ``mathjax``, pinned below)
into ``book/_extra/_static/mathjax/``. ``_config.yml`` copies ``book/_extra`` into the HTML output
(``html_extra_path``) and points ``mathjax_path`` at ``mathjax/tex-mml-chtml.js``, which Sphinx
resolves under ``_static/``. It is deliberately not in a ``_static`` folder of the book: Jupyter
Book would inject every ``.js`` file found there into every page.

The files come from the npm registry (``npm pack``), once; later builds find them in place.
Only the entry point and the component folders it may load on demand are kept (about 6 MB);
the speech-rule engine (``sre``, 4 MB) and the other combined builds are left out. Nothing here is committed (``book/.gitignore``).

**Punctuation after math.** A browser may break a line between an inline formula (MathJax's
inline-block) and the "." that follows it, leaving the "." alone at the start of the next line.
``static/math-glue.js``, loaded on every page, wraps each such formula and its punctuation in a
span that does not break, once MathJax has typeset the page (the browser test checks that none is left).

**The Colab badge.** A notebook shows Colab's hosted badge image (a relative path is broken
inside Colab); the book shows the same picture from its own assets (``book/assets/colab-badge.svg``).

**thebe.** Jupyter Book always loads sphinx-thebe, which writes a script naming thebe's CDN address
into every page (twice, with Sphinx 7.4, which is a JavaScript error). The book runs its code in
Colab instead (``launch_buttons.thebe: false``), so those scripts are removed from every page.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MATHJAX_VERSION = "3.2.2"
LAYOUT = "1"  # bump when the selection of files below changes
ENTRY = "tex-mml-chtml.js"
HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "_extra" / "_static" / "mathjax"
# The entry point, what it loads, and the folders of the components it may load on demand.
KEEP_FILES = {ENTRY, "core.js", "loader.js", "startup.js"}
KEEP_DIRS = ("input/", "output/", "ui/", "a11y/", "adaptors/")


def installed(target: Path = TARGET) -> bool:
    stamp = target / "VERSION"
    return (target / ENTRY).is_file() and stamp.is_file() and stamp.read_text().strip() == f"{MATHJAX_VERSION} {LAYOUT}"


def ensure(target: Path = TARGET, log=print) -> Path:
    """Put MathJax's es5 build into ``target`` unless that version is already there."""
    if installed(target):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch MathJax for the offline book (apt-get install npm, "
                           "or conda install nodejs)")
    log(f"fetching mathjax@{MATHJAX_VERSION} from the npm registry into {target}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", tmp, "--silent"],
                       check=True, stdout=subprocess.DEVNULL, timeout=300)
        (tgz,) = Path(tmp).glob("mathjax-*.tgz")
        staging = Path(tmp) / "es5"
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("package/")
                if not name.startswith("es5/") or not member.isfile():
                    continue
                rel = name.removeprefix("es5/")
                if rel not in KEEP_FILES and not rel.startswith(KEEP_DIRS):
                    continue
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
            for member in tar.getmembers():  # keep MathJax's licence next to it
                if member.name == "package/LICENSE":
                    with tar.extractfile(member) as src, open(staging / "LICENSE", "wb") as out:
                        shutil.copyfileobj(src, out)
        (staging / "VERSION").write_text(f"{MATHJAX_VERSION} {LAYOUT}\n")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, target)
    return target


def _on_config_inited(app, config):
    from sphinx.util import logging

    ensure(log=logging.getLogger(__name__).info)


COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "book/assets/colab-badge.svg"  # from the book's root


def _local_badge(app, doctree):
    """Every image of Colab's hosted badge points at the book's own copy, relative to its page."""
    import os

    from docutils import nodes

    here = os.path.dirname(app.env.docname)
    for img in doctree.findall(nodes.image):
        if img.get("uri") == COLAB_BADGE:
            img["uri"] = os.path.relpath(LOCAL_BADGE, here or ".")


def _is_thebe(js) -> bool:
    name = str(getattr(js, "filename", js) or "")
    body = str(getattr(js, "attributes", {}).get("body", ""))
    return "thebe" in name or "THEBE_JS_URL" in body


def _drop_thebe(app, pagename, templatename, context, doctree):
    if "script_files" in context:
        context["script_files"] = [js for js in context["script_files"] if not _is_thebe(js)]


def setup(app):
    # Before Sphinx validates html_extra_path (priority 800), so that the folder exists by then.
    app.connect("config-inited", _on_config_inited, priority=100)
    app.add_js_file("math-glue.js")  # in book/_ext/static, which claims_ledger serves (html_static_path)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("doctree-read", _local_badge, priority=400)  # before Sphinx collects the page's images
    return {"version": MATHJAX_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    path = ensure()
    print(f"MathJax {MATHJAX_VERSION} is in {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    sys.exit(0)
