"""Figures of the book: image grids, reverse-chain trajectories, 2-D scatters, schedules, curves
and trade-off plots.

Every function returns a matplotlib ``Figure`` (``image_grid`` returns the pixels) and never calls
``plt.show``: it is safe headless. Figures are made through pyplot, so a notebook shows them at the
end of the cell; end the line with ``;`` (or assign the figure) to avoid a second copy. Figures are
small (``DPI`` = 90, a few inches) so executed notebooks stay light.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

# The book's figures: every chapter's inline backend saves at DPI (``book_style``, which
# ``notebook.Session`` applies), and the book's text column is COLUMN_PX wide. A figure wider than
# COLUMN_IN inches is scaled down in the page, and its text with it (a 7-point label at 1300 px wide
# became ~6 px): ``_figure`` keeps every figure it makes within the column.
DPI = 110
COLUMN_PX = 704
COLUMN_IN = COLUMN_PX / DPI  # 6.4 inches
BOOK_STYLE = {"figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 9}
SCHEDULE_QUANTITIES = ("alpha_bar", "snr", "log_snr", "betas", "beta_tilde", "sigma")


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def book_style() -> None:
    """The book's matplotlib settings (resolution, base font), for the figures a chapter draws."""
    plt.rcParams.update(BOOK_STYLE)


def column_size(width: float, height: float) -> tuple[float, float]:
    """(width, height) in inches, scaled down together to fit the text column if wider."""
    k = min(1.0, COLUMN_IN / width)
    return width * k, height * k


def panels(n: int, ncol: int = 3, height: float = 2.4, width: float = 6.2):
    """``n`` panels, ``ncol`` to a row, in a figure ``width`` inches wide (within the column):
    returns (figure, the n axes in reading order); the unused axes of the last row are hidden."""
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=column_size(width, height * nrow), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, list(axes.ravel()[:n])


def _figure(nrows: int = 1, ncols: int = 1, figsize=(3.2, 2.6), **kw):
    kw.setdefault("layout", "constrained")  # room for titles and labels
    figsize = column_size(*figsize)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, dpi=DPI, squeeze=False, **kw)
    return fig, axes


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def to_uint8(x) -> np.ndarray:
    """Images in [-1, 1] to uint8 in [0, 255]: round((x + 1) * 127.5), clipped (as the ADM
    evaluator quantizes samples)."""
    return np.clip(np.round((_np(x).astype(np.float64) + 1) * 127.5), 0, 255).astype(np.uint8)


def image_grid(x, nrow: int = 8, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] (C = 1 or 3) into one (rows, cols, C) uint8 array.

    ``nrow`` images per row, filled row by row; image i has its top-left pixel at
    (padding + (i // nrow) (H + padding), padding + (i % nrow) (W + padding)).
    """
    x = to_uint8(x)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, C, H, W) with C = 1 or 3, got shape {x.shape}")
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    grid = np.full((padding + nrows * (h + padding), padding + ncol * (w + padding), c), pad_value, np.uint8)
    for i in range(n):
        top, left = padding + (i // ncol) * (h + padding), padding + (i % ncol) * (w + padding)
        grid[top:top + h, left:left + w] = x[i].transpose(1, 2, 0)  # (H, W, C)
    return grid


def _imshow(ax, grid: np.ndarray, title: str | None = None):
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)


def show_grid(x, nrow: int = 8, title: str | None = None, ax=None, scale: float = 0.55, padding: int = 1):
    """Show images (N, C, H, W) in [-1, 1] as a grid; ``scale`` is inches per image. Returns the figure."""
    grid = image_grid(x, nrow, padding)
    if ax is None:
        ncol, nrows = min(nrow, len(x)), math.ceil(len(x) / min(nrow, len(x)))
        fig, axes = _figure(figsize=(max(1.5, ncol * scale), max(1.0, nrows * scale + (0.3 if title else 0))))
        ax = axes[0, 0]
    _imshow(ax, grid, title)
    return ax.figure


def show_trajectory(frames: Sequence, labels: Sequence | None = None, title: str | None = None, scale: float = 0.6):
    """Images along the reverse chain: one row per sample, one column per frame.

    ``frames`` is a list of (N, C, H, W) tensors (e.g. x_t at a few t, or the predicted x_0);
    ``labels`` names the columns (e.g. ``[f"t={t}" for t in ts]``).
    """
    if len(frames) == 0:
        raise ValueError("no frames to show")
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")
    stack = torch.stack([torch.as_tensor(f).detach().cpu().float() for f in frames], 1)  # (N, F, C, H, W)
    n, nf, _, h, w = stack.shape
    pad = 1
    grid = image_grid(stack.flatten(0, 1), nrow=nf, padding=pad)
    fig, axes = _figure(figsize=(max(2.0, nf * scale), max(1.0, n * scale + 0.35)))
    ax = axes[0, 0]
    _imshow(ax, grid, title)
    if labels is not None:
        ax.set_xticks([pad + i * (w + pad) + w / 2 for i in range(nf)])
        ax.set_xticklabels([str(v) for v in labels], fontsize=7)
        ax.xaxis.set_ticks_position("top")
        ax.tick_params(length=0)
    return fig


# --------------------------------------------------------------------------------------------
# 2-D toys
# --------------------------------------------------------------------------------------------
def scatter2d(x, ax=None, title: str | None = None, lim: float | None = None, s: float = 2.0,
              alpha: float = 0.5, c=None, **kw):
    """Scatter (N, 2) points; ``lim`` sets a square window [-lim, lim]^2. Returns the figure."""
    x = _np(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"expected points (N, 2), got shape {x.shape}")
    if ax is None:
        ax = _figure(figsize=(2.6, 2.6))[1][0, 0]
    ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, c=_np(c) if c is not None else None, linewidths=0, **kw)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return ax.figure


def scatter_panels(arrays: Sequence, titles: Sequence[str] | None = None, lim: float | None = None,
                   ncols: int | None = None, size: float = 2.2, **kw):
    """Several 2-D point clouds side by side on a shared window (``lim``, else the joint extent)."""
    arrays = [_np(a) for a in arrays]
    if titles is not None and len(titles) != len(arrays):
        raise ValueError(f"{len(titles)} titles for {len(arrays)} panels")
    if lim is None:
        lim = 1.05 * max(float(np.abs(a).max()) for a in arrays)
    ncols = ncols or len(arrays)
    nrows = math.ceil(len(arrays) / ncols)
    fig, axes = _figure(nrows, ncols, figsize=(size * ncols, size * nrows))
    for i, ax in enumerate(axes.flat):
        if i < len(arrays):
            scatter2d(arrays[i], ax=ax, title=titles[i] if titles else None, lim=lim, **kw)
        else:
            ax.axis("off")
    return fig


def density_contours(log_prob_fn: Callable[[torch.Tensor], torch.Tensor], lim: float = 3.0, n: int = 120,
                     ax=None, title: str | None = None, filled: bool = True):
    """Contours of a 2-D density exp(log_prob_fn(points)) on [-lim, lim]^2 (an n x n float64 grid)."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    logp = torch.as_tensor(log_prob_fn(torch.stack([xx.flatten(), yy.flatten()], 1))).reshape(n, n)
    if ax is None:
        ax = _figure(figsize=(2.6, 2.6))[1][0, 0]
    draw = ax.contourf if filled else ax.contour
    draw(_np(xx), _np(yy), _np(logp.exp()), levels=12, cmap="viridis")
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


# --------------------------------------------------------------------------------------------
# Schedules, curves, trade-offs
# --------------------------------------------------------------------------------------------
def _schedule_quantity(sched, q: str) -> np.ndarray:
    if q == "snr":
        return _np(sched.snr())
    if q == "log_snr":
        return np.log(_np(sched.snr()))
    if q == "sigma":
        return np.sqrt(1 / _np(sched.alpha_bar) - 1)  # x_t / sqrt(alpha_bar) = x_0 + sigma eps
    return _np(getattr(sched, q))


def plot_schedules(schedules: dict, quantities: Sequence[str] = ("alpha_bar", "snr"), size: float = 2.8):
    """One panel per quantity of each named ``Schedule`` against t / T, so chains of different T
    line up (Improved DDPM Fig. 5 plots alpha_bar this way). snr, betas, beta_tilde and sigma use a
    log axis."""
    bad = [q for q in quantities if q not in SCHEDULE_QUANTITIES]
    if bad:
        raise ValueError(f"unknown quantities {bad}; valid choices: {list(SCHEDULE_QUANTITIES)}")
    fig, axes = _figure(1, len(quantities), figsize=(size * len(quantities), size * 0.8))
    for ax, q in zip(axes[0], quantities):
        for name, sched in schedules.items():
            t = (np.arange(sched.T) + 1) / sched.T
            ax.plot(t, _schedule_quantity(sched, q), label=name, lw=1.2)
        if q in ("snr", "betas", "beta_tilde", "sigma"):
            ax.set_yscale("log")
        ax.set_xlabel("t / T", fontsize=8)
        ax.set_title(q, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    return fig


def _style(ax, xlabel, ylabel, logx, logy, title):
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def plot_curves(curves: dict, xlabel: str = "", ylabel: str = "", logx: bool = False, logy: bool = False,
                title: str | None = None, ax=None, figsize=(3.6, 2.6)):
    """Line plots of ``label -> (x, y)``: learning curves, sweeps. Returns the figure."""
    if ax is None:
        ax = _figure(figsize=figsize)[1][0, 0]
    for label, (x, y) in curves.items():
        ax.plot(_np(x), _np(y), label=str(label), lw=1.2)
    _style(ax, xlabel, ylabel, logx, logy, title)
    if len(curves) > 1:
        ax.legend(fontsize=7)
    return ax.figure


def tradeoff_plot(points: dict, xlabel: str = "", ylabel: str = "", annotations: dict | None = None,
                  logx: bool = False, logy: bool = False, title: str | None = None, ax=None, figsize=(3.6, 2.8)):
    """Trade-offs such as FID vs NLL or precision vs recall: ``label -> (x, y)`` where x and y are
    scalars (one point) or sequences (a sweep, joined by a line). ``annotations`` (``label -> list
    of str``, e.g. guidance scales) labels the points of a sweep; a single point gets its label."""
    if ax is None:
        ax = _figure(figsize=figsize)[1][0, 0]
    for label, (x, y) in points.items():
        x, y = np.atleast_1d(_np(x)).astype(float), np.atleast_1d(_np(y)).astype(float)
        if x.shape != y.shape:
            raise ValueError(f"{label}: x has {x.shape} values, y has {y.shape}")
        ax.plot(x, y, "o-" if len(x) > 1 else "o", ms=4, lw=1.0, label=str(label))
        notes = (annotations or {}).get(label, [str(label)] if len(x) == 1 else [])
        for xi, yi, note in zip(x, y, notes):
            ax.annotate(str(note), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.margins(0.12)  # room for the annotations
    _style(ax, xlabel, ylabel, logx, logy, title)
    if len(points) > 1:
        ax.legend(fontsize=7)
    return ax.figure


def close(fig=None) -> None:
    """Close a figure (or all): loops that make many figures should close them."""
    plt.close(fig if fig is not None else "all")


__all__ = ["DPI", "image_grid", "to_uint8", "show_grid", "show_trajectory", "scatter2d", "scatter_panels",
           "density_contours", "plot_schedules", "plot_curves", "tradeoff_plot", "close"]
