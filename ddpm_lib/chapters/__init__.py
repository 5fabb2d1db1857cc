"""Per-chapter helpers: each chapter's typed ``Record`` (what its claims read), its claims as small
named rules (``RULES``, one ``Claim`` row each) and its "What we see" paragraphs, kept out of the
notebook so that its cells stay short (the cells that call them are tagged ``hide-input``).

``module(chapter)`` gives a chapter's module; ``tools/claims.py`` (``make claims``) uses it to
re-derive every chapter's verdicts from the records stored in ``book/results``."""
from __future__ import annotations

import importlib

MODULES = {"00_forward_process": "forward", "01_igpt": "igpt", "02_ddpm": "ddpm", "03_improved_ddpm": "improved",
           "04_adm": "adm", "05_dalle": "dalle", "06_glide": "glide", "07_unclip": "unclip", "08_dalle3": "dalle3",
           "09_consistency": "consistency"}


def module(chapter: str):
    """The claims module of ``chapter`` (e.g. '02_ddpm'); an unknown chapter names the valid ones."""
    if chapter not in MODULES:
        raise ValueError(f"unknown chapter {chapter!r}; valid choices: {sorted(MODULES)}")
    return importlib.import_module(f"{__name__}.{MODULES[chapter]}")


def on_typed_seam(mod) -> bool:
    """Does the chapter's module state its claims as rules over a typed record?"""
    return hasattr(mod, "Record") and hasattr(mod, "RULES")
