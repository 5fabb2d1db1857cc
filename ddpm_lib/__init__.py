"""ddpm_lib: the thin library behind the diffusion reproduction book.

One concept per module; the README's "The library, module by module" is the map.

Import ``ddpm_lib`` before ``torch`` (every chapter's first cell does): OpenMP threads that spin
while waiting make CPU training up to 40x slower whenever another process shares the cores (measured
here: 4.5 s vs 0.13 s per step of a small UNet on 2 cores; two concurrent smoke runs of chapter 02
took 885 s instead of 36 s). Passive waiting must be chosen before torch loads its OpenMP runtime,
which reads the setting once; after that it cannot be changed from Python.
"""
import os as _os
import sys as _sys
import warnings as _warnings

if "OMP_WAIT_POLICY" in _os.environ:
    OMP_GUARD = f"{_os.environ['OMP_WAIT_POLICY'].lower()} (from the environment)"
elif "torch" not in _sys.modules:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    OMP_GUARD = "passive (set by ddpm_lib before torch loaded)"
else:
    OMP_GUARD = "not set: torch was imported before ddpm_lib"
    _warnings.warn("torch was imported before ddpm_lib, so OpenMP threads spin while waiting: CPU training "
                   "can run many times slower when another process shares the cores. Import ddpm_lib first "
                   "(restart the kernel), or set OMP_WAIT_POLICY=PASSIVE in the environment.", stacklevel=2)

__version__ = "0.1.0"
