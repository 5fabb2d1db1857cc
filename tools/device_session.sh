#!/usr/bin/env bash
# On a lent GPU machine without network: the benchmark, then chapters recorded with the gpu profile,
# in one command, with what it made copied to $OUT (the device tool brings $OUT back).
#
#   tools/device_session.sh [CHAPTER ...]          e.g. tools/device_session.sh 02_ddpm 03
#
# Prepare here first: `make device-wheels` (the wheels that machine lacks, into .whl/), then call the
# device tool from the repository root with carry [".whl"] and this script as the command. It
#   1. installs .whl/*.whl into /tmp/site (no index, no dependencies: the set is complete) and puts the
#      checkout's ddpm_lib on PYTHONPATH; checks that torch sees CUDA and that papermill, jupytext,
#      ipykernel and diffusers import, and stops at once naming what is missing;
#   2. runs the benchmark (benchmarks/unet_speed.py --device cuda, BENCH_LIMIT_S, 240 s by default;
#      BENCH=0 skips it) into book/performance/cuda.{json,md} (runs/bench/ with DEVICE=cpu);
#   3. records each CHAPTER with `tools/run_notebook.py CHAPTER --record --profile gpu` under a limit of
#      CHAPTER_LIMIT_S (540 s by default): book/gpu/<chapter>.ipynb and book/results/gpu/<chapter>.json;
#      a chapter that fails or runs out of time is named with its elapsed time and the next one runs;
#   4. copies those files, flat, and the session's log to $OUT when it is set (at most 8 files come back:
#      the log, the benchmark's two and two per chapter, so name at most two chapters per command).
# DEVICE=cpu runs the same steps without CUDA (the benchmark's --quick code-path check): how the tests
# and a session without a GPU check this script. The whole dry run, in a copy of the checkout so that its
# records never land in this book (00's gpu preset finishes on a CPU, 02's is stopped at the limit):
#   d=$(mktemp -d); git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$d/"; cd "$d" &&
#   DEVICE=cpu CHAPTER_LIMIT_S=150 OUT="$d/out" DDPM_CACHE="$d/cache" PYTHON=<the venv's python> \
#     tools/device_session.sh 00 02
# 2026-12-06 on 2 shared cores: benchmark 99 s, 00 recorded in 102 s, 02 out of time after 154 s (its kernel
# shut itself down); $OUT held the benchmark's two files, 00's two and the log.
set -uo pipefail
cd "$(dirname "$0")/.."
# (no MPLBACKEND: the kernel's inline backend is what puts the figures into the recorded notebook)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 DDPM_PLAIN_PROGRESS=1
unset MPLBACKEND
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
# the gpu profile is refused without CUDA (hours on a CPU); the DEVICE=cpu dry run means it
[ "$DEVICE" = cuda ] || export DDPM_ALLOW_GPU_PROFILE_ON_CPU=1
LIMIT="${CHAPTER_LIMIT_S:-540}"
LOG="$(mktemp -t device-session.XXXXXX.log)"
say() { echo "device-session: $*" | tee -a "$LOG"; }
t0=$(date +%s)

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { say "error: the wheels in .whl/ did not install"; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PATH="/tmp/site/bin:$PATH"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - "$DEVICE" <<'PYEOF' 2>&1 | tee -a "$LOG"
import importlib, sys
device = sys.argv[1]
missing = []
for name in ("ddpm_lib", "torch", "papermill", "jupytext", "ipykernel", "nbformat", "diffusers"):  # ddpm_lib first: before torch
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - any failure to import is a missing package here
        missing.append(f"{name} ({type(e).__name__}: {e})")
if missing:
    sys.exit("device-session: error: cannot import " + "; ".join(missing) + " (make device-wheels here, carry .whl)")
import torch
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("device-session: error: torch sees no CUDA device (DEVICE=cpu checks the script without one)")
name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
print(f"device-session: torch {torch.__version__} on {name}; python {sys.version.split()[0]}")
PYEOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

bench_done=
if [ "${BENCH:-1}" = 1 ]; then
  s=$(date +%s)
  bench_dir=book/performance  # the book's page includes cuda.md; a DEVICE=cpu check never writes over cpu.md
  [ "$DEVICE" = cuda ] || bench_dir=runs/bench
  mkdir -p "$bench_dir"
  bench_args=(--device "$DEVICE" --out "$bench_dir/$DEVICE.json" --markdown "$bench_dir/$DEVICE.md")
  if [ "$DEVICE" = cuda ]; then bench_args+=(--peak-tflops "${PEAK_TFLOPS:-989}"); else bench_args+=(--quick); fi
  timeout "${BENCH_LIMIT_S:-240}" "$PY" benchmarks/unet_speed.py "${bench_args[@]}" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  say "benchmark: exit $rc after $(( $(date +%s) - s )) s"
  [ "$rc" -eq 0 ] && bench_done=1
fi

done_chapters=()
for ch in "$@"; do
  s=$(date +%s)
  timeout --kill-after=20 "$LIMIT" "$PY" tools/run_notebook.py "$ch" --record --profile gpu 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  el=$(( $(date +%s) - s ))
  case $rc in
    0) say "$ch: recorded in $el s"; done_chapters+=("$ch") ;;
    # timeout signals its whole process group; the kernel, in a session of its own, polls its parent
    # (ipykernel's JPY_PARENT_PID) and exits within a second of papermill's end: nothing else to kill
    # (a pkill by name would also end other users' kernels on a shared machine)
    124|137) say "$ch: out of time after $el s (CHAPTER_LIMIT_S=$LIMIT); nothing recorded" ;;
    *) say "$ch: failed (exit $rc) after $el s; the partial run is under runs/" ;;
  esac
done
say "session: $(( $(date +%s) - t0 )) s in all"

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  [ -n "${bench_done:-}" ] && cp "$bench_dir/$DEVICE.json" "$bench_dir/$DEVICE.md" "$OUT/"
  for ch in "${done_chapters[@]}"; do
    stem="$("$PY" -c 'import sys; sys.path.insert(0, "tools"); import run_notebook as r; print(r.resolve_notebook(sys.argv[1]))' "$ch")"
    cp "book/gpu/$stem.ipynb" "book/results/gpu/$stem.json" "$OUT/" 2>/dev/null
  done
  cp "$LOG" "$OUT/device-session.log"
fi
exit 0
