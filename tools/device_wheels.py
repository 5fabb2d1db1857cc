"""Download the wheels that a lent GPU machine lacks, for tools/device_session.sh there.

    python tools/device_wheels.py [--dest .whl] [--python 3.12]      (make device-wheels)

The device machines of this workplace have no network; they run Python 3.12 with PyTorch, numpy,
matplotlib, einops, safetensors, tqdm, scikit-learn and scipy already installed (the list below, as
the device tool's KINDS.md gave it on 2026-11-17), but none of what runs a notebook or the benchmark.
This asks pip to resolve what the recording needs (papermill, jupytext, ipykernel, diffusers) for
that Python and platform, with all their dependencies, as binary wheels, then keeps only the wheels
of packages that the machine does not have. The folder (ignored by git) travels with the device
tool's ``carry``; tools/device_session.sh installs it with ``pip --no-index --no-deps --target``.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ["papermill>=2.5", "jupytext>=1.16", "ipykernel>=6", "nbformat", "nbclient", "diffusers>=0.30"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
# On the device image (KINDS.md, read on 2026-11-17): installed there, so not carried.
ON_DEVICE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split()


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> str:
    """The distribution name of a wheel file (``name-version-...whl``)."""
    return norm(path.name.split("-")[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", default=str(ROOT / ".whl"))
    ap.add_argument("--python", default="3.12", help="the device's Python (major.minor)")
    a = ap.parse_args(argv)
    dest = Path(a.dest)
    on_device = {norm(n) for n in ON_DEVICE}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", a.python,
               "--implementation", "cp", "-d", tmp, *[f"--platform={p}" for p in PLATFORMS], *NEEDED]
        print("resolving for Python", a.python, "x86_64:", " ".join(NEEDED))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        noise = re.compile(r"^WARNING: Location .* is ignored")  # this machine's index mirrors, not news
        for line in (proc.stdout + proc.stderr).splitlines():
            if line.strip() and not noise.match(line):
                print(line, file=sys.stderr)
        if proc.returncode:
            print("error: pip could not resolve the wheels (is the package index reachable?)", file=sys.stderr)
            return 1
        wheels = sorted(Path(tmp).glob("*.whl"))
        keep = [w for w in wheels if wheel_name(w) not in on_device]
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for w in keep:
            shutil.copy2(w, dest / w.name)
    size = sum(p.stat().st_size for p in dest.glob("*.whl")) / 2**20
    print(f"{len(keep)} wheels ({size:.1f} MiB) in {dest} (left out as already on the device: "
          f"{', '.join(sorted(wheel_name(w) for w in wheels if wheel_name(w) in on_device)) or 'none'})")
    for w in keep:
        print("  ", w.name)
    if size > 48:
        print("warning: over 48 MiB: the device tool carries at most 64 MiB with the working tree", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
