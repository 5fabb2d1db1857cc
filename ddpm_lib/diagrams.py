"""Pictures of the ideas, drawn in code: the book's purpose-drawn diagrams.

Every other figure in the book is a run's output; these draw a concept. Each function returns a
matplotlib figure sized for the book's 704 px text column (``viz.COLUMN_IN`` wide at ``viz.DPI``)
and computes what it draws where there is something to compute:

- ``chain``: the forward chain q(x_t | x_0) on a small image, with the cosine schedule's
  sqrt(alpha_bar_t) under each panel, and the reverse chain p(x_{t-1} | x_t) the model learns.
- ``unet``: the UNet's blocks and the routes by which each chapter's condition enters (time, class,
  text tokens, a CLIP image embedding).
- ``guidance``: classifier-free guidance as arithmetic on two predictions, in two dimensions.
- ``consistency``: probability-flow ODE trajectories of a two-point data set (its exact denoiser
  is tanh(x / sigma^2)), and the consistency function mapping every point of one trajectory to
  its origin.

``tools/diagrams.py`` (``make diagrams``) writes them to ``book/assets/diagrams/`` for the book's
"The ideas in pictures" page; ``tests/test_diagrams.py`` checks the committed files are the ones
this code draws.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .schedules import cosine_alpha_bar
from .viz import COLUMN_IN, DPI

FONT = 9  # points: 11 px at DPI 90, the book's smallest readable figure text


def _canvas(height_in: float, xlim=(0, 100), ylim=(0, 40)):
    fig, ax = plt.subplots(figsize=(COLUMN_IN, height_in), dpi=DPI)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99)
    return fig, ax


def _box(ax, x, y, w, h, text, colour="#dbe9f6", size=FONT):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.4,rounding_size=1.2", fc=colour,
                                ec="#444", lw=0.8))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def _arrow(ax, a, b, colour="#333", rad=0.0, style="-|>", lw=1.0, ls="-"):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=10, color=colour, lw=lw, ls=ls,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))


def ring(size: int = 16) -> np.ndarray:
    """A small test image in [-1, 1]: a bright ring on a dark ground."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    return np.where(np.abs(r - size / 4) < size / 10, 1.0, -1.0)


def chain(steps=(0, 100, 250, 500, 750, 1000), T: int = 1000, seed: int = 0):
    """The forward chain drawn on ``ring()``: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
    with one eps for every panel (cosine schedule), the fixed q arrows above and the learned p arrows
    below."""
    x0 = ring()
    eps = np.random.default_rng(seed).standard_normal(x0.shape)
    fig, axes = plt.subplots(1, len(steps), figsize=(COLUMN_IN, 2.35), dpi=DPI)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.2, wspace=0.45)
    for ax, t in zip(axes, steps):
        ab = float(cosine_alpha_bar(np.array([t / T]))[0] / cosine_alpha_bar(np.array([0.0]))[0])
        xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
        ax.imshow(xt, cmap="gray", vmin=-2, vmax=2, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"$x_{{{t}}}$", fontsize=FONT + 1)
        ax.set_xlabel(rf"$\sqrt{{\bar\alpha}}$ = {np.sqrt(ab):.2f}", fontsize=FONT - 1)
    for a, b in zip(axes[:-1], axes[1:]):  # between panels: q forward above the middle, p back below
        pa, pb = a.get_position(), b.get_position()
        mid = (pa.y0 + pa.y1) / 2
        for y, colour, ends in ((mid + 0.07, "#1f6feb", (pa.x1, pb.x0)), (mid - 0.07, "#cf222e", (pb.x0, pa.x1))):
            fig.add_artist(FancyArrowPatch((ends[0], y), (ends[1], y), transform=fig.transFigure, arrowstyle="-|>",
                                           mutation_scale=10, color=colour, lw=1.4, shrinkA=1, shrinkB=1))
    fig.text(0.5, 0.93, r"forward $q(x_t \mid x_{t-1})$: fixed, adds a little Gaussian noise each step",
             ha="center", fontsize=FONT, color="#1f6feb")
    fig.text(0.5, 0.01, r"reverse $p_\theta(x_{t-1} \mid x_t)$: learned, removes it one step at a time",
             ha="center", fontsize=FONT, color="#cf222e")
    return fig


def unet():
    """The UNet: its resolutions down and up with skip connections, and each condition's route in:
    one embedding vector (time, plus class or CLIP embedding) into every ResBlock, and a sequence of
    tokens (text, plus unCLIP's CLIP tokens) into every attention block."""
    fig, ax = _canvas(4.0, ylim=(-1.5, 58))
    levels = [(4, 44, "32x32\nResBlocks"), (18, 34, "16x16\nRes + Attn"), (32, 24, "8x8\nRes + Attn")]
    blocks = []
    for x, y, text in levels:
        _box(ax, x, y, 11, 7, text)
        _box(ax, 85 - x, y, 11, 7, text, colour="#e6f4ea")
        _arrow(ax, (x + 12, y + 3.5), (85 - x - 1, y + 3.5), colour="#888", ls="--")  # skip
        blocks += [(x, y), (85 - x, y)]
    for (x, y, _), (x2, y2, _) in zip(levels[:-1], levels[1:]):
        _arrow(ax, (x + 8, y), (x2 + 3, y2 + 7.5))
        _arrow(ax, (85 - x2 + 8, y2 + 7.5), (85 - x + 3, y))
    _box(ax, 44.5, 13, 11, 7, "middle\nRes+Attn+Res", colour="#fff4d6")
    _arrow(ax, (40, 24), (47, 20.5))
    _arrow(ax, (53, 20.5), (60, 24))
    ax.text(7, 55.5, r"$x_t$", ha="center", fontsize=FONT + 1)
    _arrow(ax, (7, 54), (7, 51.6))
    ax.text(86, 55.5, r"$\hat\epsilon$ (and $\Sigma$)", ha="center", fontsize=FONT + 1)
    _arrow(ax, (86, 51.6), (86, 54))
    ax.text(50, 40, "skip connections\n(concatenated)", ha="center", fontsize=FONT - 1, color="#666")
    # one embedding vector e into every ResBlock; a token sequence c into every attention block
    def badge(x, y, letter, colour):
        ax.add_patch(plt.Circle((x, y), 1.6, fc=colour, ec="white", lw=0.8, zorder=3))
        ax.text(x, y, letter, ha="center", va="center", fontsize=FONT - 1, color="white", zorder=4,
                fontweight="bold")

    for (x, y), text in zip(blocks + [(44.5, 13)], [t for *_, t in levels for _ in (0, 1)] + ["Attn"]):
        badge(x + 10.5, y + 7.6, "e", "#1f6feb")
        if "Attn" in text:
            badge(x + 6.8, y + 7.6, "c", "#cf222e")
    _box(ax, 1, 0, 45, 7, "e: MLP(sinusoid(t)) + a class embedding (ADM)\nor the pooled text (GLIDE), + the"
         " projected\nCLIP image embedding (unCLIP): every ResBlock", colour="#dbe4ff", size=FONT - 1)
    _box(ax, 54, 0, 45, 7, "c: the text transformer's token outputs (GLIDE),\n+ tokens made from the CLIP"
         " embedding\n(unCLIP): keys and values in every attention block", colour="#ffe1de", size=FONT - 1)
    return fig


def guidance(scales=(1.0, 3.0)):
    """Classifier-free guidance as arithmetic on two noise predictions at one x_t: the guided
    prediction moves from the unconditional one along their difference, s times."""
    fig, ax = plt.subplots(figsize=(COLUMN_IN * 0.62, 3.1), dpi=DPI)
    e_u, e_c = np.array([1.0, 0.3]), np.array([1.6, 1.2])
    for v, colour, text in [(e_u, "#6e7781", r"$\epsilon_\theta(x_t, \varnothing)$"),
                            (e_c, "#1f6feb", r"$\epsilon_\theta(x_t, c)$")]:
        ax.annotate("", v, (0, 0), arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.4))
        ax.text(*(v + [0.05, -0.12]), text, color=colour, fontsize=FONT + 1)
    d = e_c - e_u
    for s in scales:
        g = e_u + s * d
        if s != 1.0:
            ax.annotate("", g, (0, 0), arrowprops=dict(arrowstyle="-|>", color="#cf222e", lw=1.6))
            ax.text(*(g + [0.06, 0.0]), rf"$\hat\epsilon$, s = {s:g}", color="#cf222e", fontsize=FONT + 1)
    far = e_u + max(scales) * d
    ax.plot([e_u[0], far[0]], [e_u[1], far[1]], ls=":", color="#cf222e", lw=1)
    ax.annotate("", e_c, e_u, arrowprops=dict(arrowstyle="-|>", color="#1a7f37", lw=1.2))
    mid = (e_u + e_c) / 2
    ax.text(mid[0] + 0.08, mid[1] - 0.1, r"$\epsilon_\theta(x_t, c) - \epsilon_\theta(x_t, \varnothing)$",
            color="#1a7f37", fontsize=FONT)
    ax.set_title(r"$\hat\epsilon = \epsilon_\theta(x_t,\varnothing) + s\,(\epsilon_\theta(x_t,c)"
                 r" - \epsilon_\theta(x_t,\varnothing))$", fontsize=FONT + 1)
    ax.set_xlim(-0.1, far[0] + 0.9)
    ax.set_ylim(-0.2, far[1] + 0.3)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def two_point_denoiser(x, sigma):
    """E[x_0 | x] for data +-1 with equal weights and noise sigma: tanh(x / sigma^2)."""
    return np.tanh(x / sigma ** 2)


def pf_ode(x_start: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Heun steps of the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma from
    sigmas[0] down to sigmas[-1], for the two-point data set; (len(sigmas), len(x_start))."""
    xs = [np.asarray(x_start, float)]
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = xs[-1]
        d = (x - two_point_denoiser(x, s)) / s
        x_euler = x + (s_next - s) * d
        d_next = (x_euler - two_point_denoiser(x_euler, s_next)) / s_next
        xs.append(x + (s_next - s) * (d + d_next) / 2)
    return np.stack(xs)


def consistency(sigma_max: float = 2.0, sigma_min: float = 0.02, n: int = 400):
    """PF-ODE trajectories of the two-point data set in (sigma, x), and the consistency function
    f(x_sigma, sigma) = x_{sigma_min} that sends each marked point of one trajectory to its end."""
    sigmas = np.geomspace(sigma_max, sigma_min, n)
    starts = np.linspace(-2.6, 2.6, 13)
    paths = pf_ode(starts, sigmas)
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 3.3), dpi=DPI)
    for j in range(len(starts)):
        ax.plot(sigmas, paths[:, j], color="#b6c2cf", lw=0.9)
    j = 8
    ax.plot(sigmas, paths[:, j], color="#1f6feb", lw=1.8, label="one trajectory of the PF-ODE")
    end = paths[-1, j]
    for k in (40, 120, 200, 280):
        ax.annotate("", (sigma_min, end), (sigmas[k], paths[k, j]),
                    arrowprops=dict(arrowstyle="-|>", color="#cf222e", lw=1.0, connectionstyle="arc3,rad=-0.2"))
        ax.plot(sigmas[k], paths[k, j], "o", color="#1f6feb", ms=4)
    ax.plot([], [], color="#cf222e", label=r"$f_\theta(x_\sigma, \sigma)$: one step to the same end")
    ax.plot(sigma_min, end, "o", color="#cf222e", ms=5)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel(r"noise level $\sigma$ (sampling runs left to right)", fontsize=FONT)
    ax.set_ylabel("x", fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)
    ax.set_title("data at -1 and +1: every trajectory ends on one of them", fontsize=FONT + 1)
    # the legend under the axes, where it hides no trajectory
    fig.legend(fontsize=FONT - 1, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return fig


DIAGRAMS = {"chain": chain, "unet": unet, "guidance": guidance, "consistency": consistency}
