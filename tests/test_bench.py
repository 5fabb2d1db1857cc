"""The speed benchmark against diffusers (benchmarks/unet_speed.py): the two models are the same size,
every configuration runs, and the table names the device, the versions and the ratios."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
SPEC = importlib.util.spec_from_file_location("unet_speed", Path(__file__).parents[1] / "benchmarks" / "unet_speed.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_both_unets_are_ddpm_cifar10_and_the_quick_run_reports_ratios():
    r = bench.measure("cpu", train_batch=2, step_batch=2, ddim_batch=2, ddim_steps=2, rounds=1, warmup=0, progress=False)
    p = r["params"]
    assert 35_000_000 < p["ddpm_lib"] < 36_500_000 and abs(p["ddpm_lib"] - p["diffusers"]) <= 0.005 * p["ddpm_lib"]
    assert 12.0 < r["gflops_forward"] < 12.8  # counted by nets.cost, the counter ddpm_lib.budget sizes presets with
    assert set(r["results"]) == {"diffusers eager", "ddpm_lib eager"}  # on a CPU: the eager fp32 paths only
    for row in r["results"].values():
        assert all(row[k] > 0 for k in ("train_img_s", "step_img_s", "ddim_img_s"))
    q = r["ratios"]["ddpm_lib eager / diffusers eager"]
    assert all(v > 0 for v in q.values())
    table = bench.markdown(r)
    assert "cpu" in table and r["torch"] in table and "ddpm_lib eager / diffusers eager" in table


def test_unknown_configuration_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid choices on cpu"):
        bench.measure("cpu", configs=["ddpm_lib best"], train_batch=1, step_batch=1, ddim_batch=1, ddim_steps=1,
                      rounds=1, warmup=0, progress=False)
