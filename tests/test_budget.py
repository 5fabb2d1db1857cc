"""The gpu presets' device-time estimates (ddpm_lib.budget): each chapter's gpu preset is sized to about
5 minutes on one H100 (two chapters per 15-minute device session), the estimate is computed from the
preset it is given, and the run card says "untested" until a gpu record exists."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch: a spinning OpenMP pool crawls on shared cores)

import dataclasses
import json

import pytest
import torch
import torch.nn as nn

from ddpm_lib import budget, profiles

LIMIT_S = 330  # 5.5 min: the estimate may overshoot 5 minutes a little, not more
FLOOR_S = 150  # a chapter that trains should use its device time: far below this, the preset wastes the session


@pytest.mark.parametrize("chapter", sorted(budget.WORK))
def test_every_gpu_preset_is_estimated_at_about_five_minutes(chapter):
    s = budget.seconds(chapter)
    assert s <= LIMIT_S, f"{chapter}: gpu preset estimated at {s:.0f} s, over {LIMIT_S} s"
    if chapter == "00_forward_process":  # no network: the overhead alone
        assert s == budget.OVERHEAD_S
    else:
        assert s >= FLOOR_S, f"{chapter}: gpu preset estimated at {s:.0f} s, under {FLOOR_S} s"


def test_every_chapter_with_presets_has_a_work_list():
    assert set(budget.WORK) == set(profiles.chapters())


@pytest.mark.parametrize("chapter, field", [("02_ddpm", "train_images"), ("03_improved_ddpm", "train_images"),
                                            ("06_glide", "train_images"), ("09_consistency", "teacher_images"),
                                            ("05_dalle", "gpt_images")])
def test_the_estimate_is_computed_from_the_preset(chapter, field):
    cfg = profiles.get(chapter, "gpu")
    base = budget.estimate(chapter, cfg)
    more = budget.estimate(chapter, dataclasses.replace(cfg, **{field: 2 * getattr(cfg, field)}))
    assert more["seconds"] > base["seconds"] + 10
    # the items that changed are exactly the training items of that field, and they doubled (up to a step)
    changed = [(a, b) for a, b in zip(base["items"], more["items"]) if a["seconds"] != b["seconds"]]
    assert changed and all(b["steps"] in (2 * a["steps"], 2 * a["steps"] - 1, 2 * a["steps"] + 1) for a, b in changed)


def test_a_step_costs_the_larger_of_its_flops_at_the_rate_and_its_launch_floor():
    big = budget.Work("linear", lambda: nn.Linear(4096, 4096), lambda b: (torch.randn(b, 4096),), "lin4096",
                      examples=10 * 65536, batch=65536, train=True)
    r = budget.item_seconds(big)
    flops = 2 * 4096 * 4096  # one multiply-add per weight, per example
    assert r["flops_per_example"] == pytest.approx(flops, rel=1e-3)
    assert r["steps"] == 10 and r["bound"] == "compute"
    assert r["compute_s"] == pytest.approx(3 * flops * 65536 / budget.RATE, rel=1e-3)
    assert r["seconds"] == pytest.approx(10 * r["compute_s"])
    small = dataclasses.replace(big, batch=4, examples=40, key="lin4096")  # same network, tiny batch: launch-bound
    r = budget.item_seconds(small)
    assert r["bound"] == "launch" and r["floor_s"] > budget.STEP_S and r["seconds"] == pytest.approx(10 * r["floor_s"])
    sampling = dataclasses.replace(small, train=False, calls=2)  # forward only, two calls a step (guidance)
    assert budget.item_seconds(sampling)["floor_s"] < r["floor_s"]


def test_counting_costs_leaves_the_random_streams_alone():
    """The run card's estimate is made after the notebook seeds torch: it must not move the chapter's draws."""
    w = budget.Work("dropout net", lambda: nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5)), lambda b: (torch.randn(b, 8),),
                    "rng-test", examples=8, batch=4, train=True)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    budget.item_seconds(w)
    assert "rng-test" in budget._PROBES and torch.equal(torch.rand(3), expected)


def test_the_card_note_states_the_estimate_and_untested_until_a_gpu_record_exists(tmp_path):
    cfg = profiles.get("02_ddpm", "gpu")
    note = budget.card_note("02_ddpm", cfg, root=tmp_path)  # a book without gpu records
    assert "untested" in note and f"{budget.seconds('02_ddpm', cfg):.0f} s" in note and "H100" in note
    assert not budget.recorded("02_ddpm", root=tmp_path)
    (tmp_path / "book" / "results" / "gpu").mkdir(parents=True)
    (tmp_path / "book" / "results" / "gpu" / "02_ddpm.json").write_text(json.dumps({"run_card": {}}))
    assert budget.recorded("02_ddpm", root=tmp_path)
    assert "untested" not in budget.card_note("02_ddpm", cfg, root=tmp_path)
    # this checkout: "untested" exactly as long as no gpu record of the chapter is committed
    assert ("untested" in budget.card_note("02_ddpm", cfg)) == (not budget.recorded("02_ddpm"))


def test_the_command_prints_every_chapter(capsys):
    budget.main(["02", "09", "--items"])
    out = capsys.readouterr().out
    assert "02_ddpm" in out and "09_consistency" in out and "03_improved" not in out
    assert "main UNet" in out and "untested" in out and "297 TFLOP/s" in out
