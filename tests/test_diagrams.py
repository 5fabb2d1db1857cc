"""The book's purpose-drawn diagrams: what they compute is right, and the committed files are what
ddpm_lib.diagrams draws now (tools/diagrams.py --check)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from ddpm_lib import diagrams, viz  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_the_two_point_denoiser_is_the_posterior_mean():
    rng = np.random.default_rng(0)
    sigma = 0.7
    x0 = rng.choice([-1.0, 1.0], size=400_000)
    x = x0 + sigma * rng.standard_normal(x0.shape)
    bins = np.linspace(-1.5, 1.5, 7)
    idx = np.digitize(x, bins)
    for b in range(1, len(bins)):
        sel = idx == b
        centre = (bins[b - 1] + bins[b]) / 2
        # within a narrow bin the posterior mean is nearly constant: compare at the bin's points
        assert abs(x0[sel].mean() - diagrams.two_point_denoiser(x[sel], sigma).mean()) < 0.01, centre


def test_pf_ode_trajectories_end_on_the_data():  # within ~sigma_min of a data point
    sigmas = np.geomspace(2.0, 0.02, 400)
    ends = diagrams.pf_ode(np.array([-2.0, -0.5, 0.3, 1.7]), sigmas)[-1]
    assert np.allclose(np.abs(ends), 1.0, atol=0.03) and np.all(np.sign(ends) == [-1, -1, 1, 1])


def test_every_diagram_fits_the_column():
    for name, draw in diagrams.DIAGRAMS.items():
        fig = draw()
        w, _ = fig.get_size_inches() * fig.dpi
        assert w <= viz.COLUMN_PX + 0.5, f"{name} is {w:.0f} px wide"
        viz.close(fig)


def test_the_committed_diagrams_are_what_the_code_draws():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "diagrams.py"), "--check"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (ROOT / "book" / "pictures.md").read_text().count("assets/diagrams/") == len(diagrams.DIAGRAMS)
