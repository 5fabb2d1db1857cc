"""ddpm_lib: the thin library behind the diffusion reproduction book.

One concept per module; see the book's "Running the book" page and DESIGN.md for the map.
"""
import os as _os
import sys as _sys

# OpenMP threads that spin while waiting make CPU training up to 40x slower whenever another
# process shares the cores (measured here: 4.5 s vs 0.13 s per step of a small UNet on 2 cores).
# Passive waiting must be chosen before torch loads its OpenMP runtime.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
