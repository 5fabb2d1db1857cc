"""Keep every notebook's Colab badge and Colab install line in step with _config.yml.

The repository URL is written in one place: ``repository.url`` (and ``repository.branch``) in
``_config.yml``. Each notebook pair carries two URLs derived from it:

* the Colab badge:  https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/notebooks/<nb>.ipynb
* the install line: pip install "ddpm_lib[hub] @ git+<url>@<branch>"

    python tools/sync_repo_url.py           rewrite both files of every pair (sources only, not outputs)
    python tools/sync_repo_url.py --check   exit 1 and list every notebook whose URLs differ
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COLAB_RE = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"'\]>]+")
GIT_RE = re.compile(r"git\+https?://[^\s\"'#]+")


def repository(root: Path = ROOT) -> tuple[str, str]:
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    repo = cfg["repository"]
    return repo["url"].rstrip("/").removesuffix(".git"), repo.get("branch", "main")


def expected(stem: str, root: Path = ROOT) -> dict[str, str]:
    url, branch = repository(root)
    if not url.startswith("https://github.com/"):
        raise ValueError(f"repository.url must be a https://github.com/ URL for Colab, got {url!r}")
    slug = url.removeprefix("https://github.com/")
    return {"colab": f"https://colab.research.google.com/github/{slug}/blob/{branch}/notebooks/{stem}.ipynb",
            "git": f"git+{url}@{branch}"}


def rewrite(text: str, want: dict[str, str]) -> str:
    text = COLAB_RE.sub(want["colab"], text)
    return GIT_RE.sub(want["git"], text)


def found(text: str) -> dict[str, set[str]]:
    return {"colab": set(COLAB_RE.findall(text)), "git": set(GIT_RE.findall(text))}


def _ipynb_sources(nb: dict) -> str:
    return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"])


def problems(root: Path = ROOT) -> list[str]:
    """Every notebook file whose badge or install URL is missing or differs from _config.yml."""
    out = []
    for path in sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "notebooks").glob("*.py")):
        want = expected(path.stem, root)
        text = _ipynb_sources(json.loads(path.read_text())) if path.suffix == ".ipynb" else path.read_text()
        got = found(text)
        for kind in ("colab", "git"):
            if not got[kind]:
                out.append(f"{path.relative_to(root)}: no {kind} URL (expected {want[kind]})")
            elif got[kind] != {want[kind]}:
                out.append(f"{path.relative_to(root)}: {kind} URL {sorted(got[kind])} != {want[kind]}")
    return out


def sync(root: Path = ROOT) -> list[Path]:
    changed = []
    for path in sorted((root / "notebooks").glob("*.py")):
        text = path.read_text()
        new = rewrite(text, expected(path.stem, root))
        if new != text:
            path.write_text(new)
            changed.append(path)
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        want, dirty = expected(path.stem, root), False
        for cell in nb["cells"]:
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            new = rewrite(src, want)
            if new != src:
                cell["source"], dirty = new.splitlines(keepends=True), True
        if dirty:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = problems()
        for line in bad:
            print(line, file=sys.stderr)
        if bad:
            print("run `make sync` (tools/sync_repo_url.py) to derive them from _config.yml", file=sys.stderr)
        return 1 if bad else 0
    for path in sync():
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
