"""Draw the book's purpose-drawn diagrams (ddpm_lib.diagrams) into book/assets/diagrams/.

    python tools/diagrams.py            write every diagram as <name>.png
    python tools/diagrams.py --check    exit 1 naming each committed diagram that differs from
                                        what the code draws now (pixels compared)
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ddpm_lib import diagrams  # noqa: E402

OUT = ROOT / "book" / "assets" / "diagrams"


def draw(name: str) -> bytes:
    """The PNG bytes of one diagram (no metadata, so the same code draws the same file)."""
    fig = diagrams.DIAGRAMS[name]()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=diagrams.DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def stale(folder: Path = OUT) -> list[str]:
    """The diagrams whose committed file is missing or differs, pixel for pixel, from a fresh drawing."""
    out = []
    for name in diagrams.DIAGRAMS:
        path = folder / f"{name}.png"
        if not path.exists():
            out.append(f"{name}: {path.relative_to(ROOT)} is missing")
            continue
        new = mpimg.imread(io.BytesIO(draw(name)), format="png")
        old = mpimg.imread(path, format="png")
        if new.shape != old.shape or not np.array_equal(new, old):
            out.append(f"{name}: {path.relative_to(ROOT)} differs from what ddpm_lib.diagrams.{name} draws")
    return out


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        bad = stale()
        for line in bad:
            print(line)
        if bad:
            print("run `make diagrams` and commit book/assets/diagrams/")
        return 1 if bad else 0
    if argv:
        print(__doc__)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for name in diagrams.DIAGRAMS:
        (OUT / f"{name}.png").write_bytes(draw(name))
        print(f"wrote {(OUT / f'{name}.png').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
