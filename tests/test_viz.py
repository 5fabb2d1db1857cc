"""Figures: the right kind of object, the right layout, small enough for committed notebooks."""
import io

import matplotlib

matplotlib.use("Agg")  # headless

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ddpm_lib import schedules, viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    viz.close()


def _png_bytes(fig) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.tell()


def test_image_grid_puts_each_image_in_its_block():
    n, c, h, w, nrow, pad = 5, 3, 4, 6, 3, 2
    values = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    x = values[:, None, None, None].expand(n, c, h, w).clone()
    x[1, 0] = 1.0  # image 1: red channel saturated
    grid = viz.image_grid(x, nrow=nrow, padding=pad)
    assert grid.dtype == np.uint8
    assert grid.shape == (pad + 2 * (h + pad), pad + nrow * (w + pad), 3)
    expect = np.round((values.numpy().astype(np.float64) + 1) * 127.5).astype(np.uint8)
    for i in range(n):
        top, left = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        block = grid[top:top + h, left:left + w]
        assert (block[..., 1:] == expect[i]).all()
        assert (block[..., 0] == (255 if i == 1 else expect[i])).all()
    assert (grid[:pad] == 255).all() and (grid[:, :pad] == 255).all()
    top, left = pad + h + pad, pad + 2 * (w + pad)  # the empty sixth slot stays padding
    assert (grid[top:top + h, left:left + w] == 255).all()
    assert list(expect) == [0, 64, 128, 191, 255]


def test_image_grid_grey_and_clipping():
    x = torch.linspace(-2, 2, 16).reshape(1, 1, 4, 4).repeat(3, 1, 1, 1)
    grid = viz.image_grid(x, nrow=8, padding=0)
    assert grid.shape == (4, 12, 1)
    assert grid.min() == 0 and grid.max() == 255  # out of range values are clipped
    with pytest.raises(ValueError, match="C = 1 or 3"):
        viz.image_grid(torch.zeros(2, 2, 4, 4))


def test_show_grid_returns_a_small_figure():
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    fig = viz.show_grid(x, nrow=8, title="samples")
    assert isinstance(fig, Figure)
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (1 + 2 * 17, 1 + 8 * 17, 3)
    assert fig.axes[0].get_title() == "samples"
    assert fig.dpi == viz.DPI and _png_bytes(fig) < 60_000
    grey = viz.show_grid(torch.rand(4, 1, 8, 8) * 2 - 1, nrow=2)
    assert grey.axes[0].images[0].get_array().shape == (1 + 2 * 9, 1 + 2 * 9)
    fig2 = viz._figure(1, 2)[0]
    assert viz.show_grid(x[:4], nrow=4, ax=fig2.axes[1]) is fig2  # draws into a given axis


def test_show_trajectory_lays_out_samples_by_frames():
    frames = [torch.full((3, 1, 8, 8), v) for v in (-1.0, 0.0, 1.0, 0.5)]
    fig = viz.show_trajectory(frames, labels=["t=999", "t=500", "t=100", "t=0"])
    ax = fig.axes[0]
    img = ax.images[0].get_array()
    assert img.shape == (1 + 3 * 9, 1 + 4 * 9)
    assert img[1, 1 + 2 * 9] == 255 and img[1 + 9, 1] == 0  # column = frame, row = sample
    assert [t.get_text() for t in ax.get_xticklabels()] == ["t=999", "t=500", "t=100", "t=0"]
    with pytest.raises(ValueError, match="labels"):
        viz.show_trajectory(frames, labels=["a"])


def test_scatter_and_panels():
    pts = np.random.default_rng(0).standard_normal((100, 2))
    fig = viz.scatter2d(pts, title="data", lim=3)
    assert isinstance(fig, Figure)
    assert np.allclose(fig.axes[0].collections[0].get_offsets(), pts)
    assert fig.axes[0].get_xlim() == (-3, 3)
    fig = viz.scatter_panels([pts, pts * 2, torch.tensor(pts)], titles=["a", "b", "c"], ncols=2)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 4 and len(visible) == 3
    assert [ax.get_title() for ax in visible] == ["a", "b", "c"]
    assert visible[0].get_xlim() == visible[1].get_xlim()  # a shared window
    with pytest.raises(ValueError, match="points"):
        viz.scatter2d(np.zeros((5, 3)))


def test_density_contours():
    fig = viz.density_contours(lambda p: -0.5 * (p**2).sum(1), lim=2.0, n=40)
    assert isinstance(fig, Figure) and len(fig.axes) >= 1


def test_plot_schedules_draws_each_quantity():
    sch = {"linear": schedules.linear(1000), "cosine": schedules.cosine(100)}
    fig = viz.plot_schedules(sch, quantities=("alpha_bar", "snr", "betas"))
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["alpha_bar", "snr", "betas"]
    assert axes[0].get_yscale() == "linear" and axes[1].get_yscale() == "log"
    x, y = axes[0].lines[1].get_data()
    assert len(x) == 100 and x[-1] == 1.0
    assert np.allclose(y, sch["cosine"].alpha_bar.numpy())
    with pytest.raises(ValueError, match="alpha_bar"):
        viz.plot_schedules(sch, quantities=("gamma",))


def test_curves_and_tradeoffs():
    steps = np.arange(1, 11)
    fig = viz.plot_curves({"train": (steps, 1 / steps), "test": (steps, 1.2 / steps)}, "step", "loss", logy=True)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_xlabel() == "step"
    fig = viz.tradeoff_plot({"guided": ([0.9, 0.8, 0.7], [0.3, 0.5, 0.6]), "unguided": (0.6, 0.75)},
                            "precision", "recall", annotations={"guided": ["s=0", "s=1", "s=4"]})
    ax = fig.axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["s=0", "s=1", "s=4", "unguided"]
    assert np.allclose(ax.lines[0].get_xdata(), [0.9, 0.8, 0.7])
    assert _png_bytes(fig) < 60_000
    with pytest.raises(ValueError, match="guided"):
        viz.tradeoff_plot({"guided": ([1, 2], [1])})


def test_panels_fill_rows_within_the_column_and_hide_the_rest():
    import matplotlib.pyplot as plt

    fig, axes = viz.panels(5, ncol=3, height=2.0)
    assert len(axes) == 5 and len(fig.axes) == 6
    assert [a.axison for a in fig.axes] == [True] * 5 + [False]
    w, h = fig.get_size_inches()
    assert w <= viz.COLUMN_IN and h == pytest.approx(4.0)
    plt.close(fig)
    fig, axes = viz.panels(2, ncol=3)  # fewer panels than a row: one row of two
    assert len(fig.axes) == 2
    plt.close(fig)
