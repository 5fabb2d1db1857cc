"""The intro's chapter table, generated from ``_toc.yml`` so that it always lists the chapters in
the order the book's navigation shows them (no hand-kept copy to drift).

    ```{chapters-table}
    ```

One row per page of the table of contents, below the root: the chapter's number (its notebook's
``NN_`` prefix, so that "02" is ``notebooks/02_ddpm``; none for a page that is not a chapter), the
part's caption, and the page as a link (its title). Pages of the "Results" part are left out.

The landing page's picture comes from a recorded notebook, never a copy of it:

    ```{hero-figure} notebooks/09_consistency.ipynb
    :after: The book in one picture
    :alt: what the picture shows

    The caption (Markdown).
    ```

shows the first figure that the notebook's outputs hold after the Markdown heading that starts with
``after``,
inline (a data URI), so it changes when the notebook is re-recorded.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

SKIP_PARTS = {"Results"}


def toc_rows(toc_path: Path) -> list[tuple[str, str]]:
    """(part caption, file) for every chapter of ``_toc.yml``, in reading order."""
    toc = yaml.safe_load(toc_path.read_text())
    rows = []
    for part in toc.get("parts", []):
        caption = part.get("caption", "")
        if caption in SKIP_PARTS:
            continue
        for ch in part.get("chapters", []):
            if "file" in ch:
                rows.append((caption, ch["file"]))
    return rows


def chapter_number(file: str) -> str:
    """'02' for notebooks/02_ddpm, '' for a page that is not a chapter notebook."""
    name = Path(file).name
    return name[:2] if file.startswith("notebooks/") and name[:2].isdigit() else ""


class ChaptersTable(SphinxDirective):
    has_content = False

    def run(self):
        toc = Path(self.env.srcdir) / "_toc.yml"
        self.env.note_dependency(str(toc))
        lines = ["| # | part | chapter |", "|---|---|---|"]
        for part, file in toc_rows(toc):
            lines.append(f"| {chapter_number(file)} | {part} | {{doc}}`/{file}` |")
        container = nodes.container(classes=["chapters-table"])
        self.state.nested_parse(StringList(lines, source="_toc.yml"), self.content_offset, container)
        return [container]


def figure_after(notebook: Path, heading: str) -> str | None:
    """The base64 PNG of the first figure in ``notebook``'s outputs after the Markdown cell with a
    heading whose text starts with ``heading``; None when there is none."""
    seen = False
    for cell in json.loads(notebook.read_text())["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown" and any(
                line.startswith("#") and line.lstrip("#").strip().startswith(heading) for line in src.splitlines()):
            seen = True
        elif seen and cell["cell_type"] == "code":
            for out in cell.get("outputs", []):
                png = out.get("data", {}).get("image/png")
                if png:
                    return (png if isinstance(png, str) else "".join(png)).replace("\n", "")
    return None


class HeroFigure(SphinxDirective):
    required_arguments = 1
    has_content = True
    option_spec = {"after": directives.unchanged_required, "alt": directives.unchanged}

    def run(self):
        path = Path(self.env.srcdir) / self.arguments[0]
        self.env.note_dependency(str(path))
        png = figure_after(path, self.options["after"]) if path.exists() else None
        if png is None:
            raise self.error(f"hero-figure: no figure after {self.options['after']!r} in {self.arguments[0]}")
        alt = self.options.get("alt", "").replace('"', "&quot;")
        box = nodes.container(classes=["hero-figure"])
        box += nodes.raw("", f'<img src="data:image/png;base64,{png}" alt="{alt}" style="max-width:100%">',
                         format="html")
        self.state.nested_parse(self.content, self.content_offset, box)
        return [box]


# A sidebar entry whose section list is empty (book/gpu before its first gpu record: its glob matches
# nothing) would still get the theme's expand chevron, which opens onto nothing.
EMPTY_SECTIONS = re.compile(r'(<li class="toctree-l\d[^"]*?) has-children([^"]*"><a [^>]*>[^<]*</a>)<details[^>]*>'
                            r'<summary>(?:(?!</summary>).)*</summary><ul[^>]*>\s*</ul>\s*</details>', re.S)


def drop_empty_sections(page: str) -> str:
    """The page with every sidebar entry whose sections are empty made a plain entry."""
    return EMPTY_SECTIONS.sub(lambda m: m.group(1) + m.group(2), page)


def _tidy_sidebars(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for path in Path(app.outdir).rglob("*.html"):
        page = path.read_text(encoding="utf-8")
        tidy = drop_empty_sections(page)
        if tidy != page:
            path.write_text(tidy, encoding="utf-8")


def setup(app):
    app.add_directive("chapters-table", ChaptersTable)
    app.add_directive("hero-figure", HeroFigure)
    app.connect("build-finished", _tidy_sidebars)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
