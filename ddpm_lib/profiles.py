"""Named presets (smoke / cpu / gpu) of every chapter, as frozen dataclasses.

``get(chapter, profile, **overrides)`` returns the chapter's config. ``profile="auto"`` means the
``DDPM_PROFILE`` environment variable when it is set, else ``gpu`` when CUDA is available, else ``cpu``.
Overrides replace single fields; an unknown chapter, profile or field raises a ValueError that lists
the valid ones. Budgets: smoke <= ~90 s on a 2-core CPU (CI), cpu <= ~20 min on a 2-core CPU,
gpu <= ~30 min on one GPU.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

PROFILES = ("smoke", "cpu", "gpu", "auto")


def resolve(profile: str | None = "auto") -> str:
    """``auto`` (or None) -> DDPM_PROFILE if set, else gpu with CUDA, else cpu."""
    if profile in (None, "", "auto"):
        env = os.environ.get("DDPM_PROFILE", "").strip()
        if env:
            if env not in PROFILES or env == "auto":
                raise ValueError(f"DDPM_PROFILE={env!r} is not a profile; valid choices: {list(PROFILES[:3])}")
            return env
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid choices: {list(PROFILES)}")
    return profile


# --------------------------------------------------------------------------------------------
# Chapter presets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForwardProcess:
    """00_forward_process: the forward process made visible."""

    T: int = 1000
    n_toy: int = 2000  # points of the 2-D toy
    toy: str = "toy2d:moons"
    image_data: str = "digits"
    image_size: int = 16
    n_images: int = 8  # images shown along t
    n_snapshots: int = 6  # noise levels shown


PRESETS: dict[str, dict[str, object]] = {
    "00_forward_process": {
        "smoke": ForwardProcess(n_toy=500, n_images=4),
        "cpu": ForwardProcess(),
        "gpu": ForwardProcess(n_toy=5000, image_size=32),
    },
}


def register(chapter: str, smoke, cpu, gpu) -> None:
    """Add a chapter's presets (all three must be instances of one frozen dataclass)."""
    if not (type(smoke) is type(cpu) is type(gpu)) or not dataclasses.is_dataclass(smoke):
        raise TypeError("presets must be instances of one dataclass")
    PRESETS[chapter] = {"smoke": smoke, "cpu": cpu, "gpu": gpu}


def chapters() -> list[str]:
    return sorted(PRESETS)


def fields(chapter: str) -> list[str]:
    return [f.name for f in dataclasses.fields(_presets(chapter)["cpu"])]


def _presets(chapter: str) -> dict:
    if chapter not in PRESETS:
        raise ValueError(f"unknown chapter {chapter!r}; valid choices: {chapters()}")
    return PRESETS[chapter]


def get(chapter: str, profile: str | None = "auto", **overrides):
    """The chapter's config for ``profile`` with ``overrides`` applied (None values are ignored)."""
    cfg = _presets(chapter)[resolve(profile)]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    valid = fields(chapter)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for chapter {chapter}; valid choices: {valid}")
    return dataclasses.replace(cfg, **overrides)
