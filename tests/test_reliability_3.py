"""Reliability, third round (issue 42): each test exercises the failure a user met, on the code before
the fix it fails.

1. a finished run in a read-only cache loads (no ``.lock`` written);
2. a preset checked as a whole at start (tuple contents, divisibility, cross-field rules);
3. the gpu profile refused without CUDA unless overridden;
4. a full disk as safetensors reports it (``SafetensorError``, os error 28) names the path;
5. an edited checkpoint header (step) is caught by the checksum;
6. a torn last line of ``log.jsonl`` is tolerated, any other bad line named;
7. a corrupt or missing EMA snapshot is recomputed, not dropped;
8. safetensors' own ``.tmpXXXXXX`` left by a killed writer is cleaned;
9. an unwritable results folder found at start;
10. tuple parameters from the command line, ``make run PARAMS`` quoting;
11. relative paths resolved where the command was run;
12. the smaller ones: a model asked for again by a re-run cell counts once on the run card; a huge seed
    named at start; no "Passed unknown parameter" for valid ones; concurrent runs of a chapter keep
    their own executed notebooks; Ctrl-C ends quietly, naming the partial notebook.
"""
from __future__ import annotations

import contextlib
import json
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from ddpm_lib import cache
from ddpm_lib import train as TR
import torch  # noqa: E402,I001 - after ddpm_lib (its OpenMP guard)
from tests.helpers.setups import make_run, same_weights

sys.path.insert(0, str(ROOT / "tools"))
import run_notebook  # noqa: E402


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_CACHE", str(tmp_path / "cache"))


# ---- real small / read-only filesystems --------------------------------------------------------
def _mount_tmpfs(path: Path, size: str) -> bool:
    """A real tmpfs of ``size`` at ``path`` (root only); False where it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_fs(tmp_path):
    """(folder, mounted): a 2 MB tmpfs where the machine allows it, else a plain folder."""
    mnt = tmp_path / "fs"
    mounted = _mount_tmpfs(mnt, "2m")
    yield mnt, mounted
    if mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def make_read_only(tmp_path):
    """A function that makes a folder really read-only: a tmpfs remounted ro (root), else chmod (not root)."""
    undo = []

    def make(path: Path, mounted: bool) -> None:
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
        elif os.geteuid() != 0:
            for p in [path, *path.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
                undo.append(p)
        else:
            pytest.skip("root without mount: no way to make a folder read-only here")
        with pytest.raises(OSError):
            (path / "probe").write_text("x")

    yield make
    for p in undo:
        p.chmod(p.stat().st_mode | 0o200)


# ---- 1. a read-only cache ---------------------------------------------------------------------
def test_a_finished_run_loads_from_a_read_only_cache(tmp_path, monkeypatch, make_read_only):
    fs = tmp_path / "ro"
    mounted = _mount_tmpfs(fs, "16m")
    try:
        monkeypatch.setenv("DDPM_CACHE", str(fs / "cache"))
        first = TR.train_cached("finished", *make_run(6), progress=False)
        TR.train_cached("unfinished", *make_run(8), progress=False, max_steps=3)
        make_read_only(fs, mounted)
        again = TR.train_cached("finished", *make_run(6), progress=False)
        assert again.loaded and again.log == first.log
        same_weights(first.ema.state_dict(), again.ema.state_dict())
        with pytest.raises(PermissionError, match="read-only cache.*not finished.*DDPM_CACHE"):
            TR.train_cached("unfinished", *make_run(8), progress=False)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(fs)], capture_output=True)


# ---- 4. a full disk ------------------------------------------------------------------------------
def test_a_full_disk_as_safetensors_reports_it_names_the_path(small_fs, monkeypatch):
    mnt, mounted = small_fs
    if not mounted:  # no real small disk here: safetensors' own error, as it raises it on one
        from safetensors import SafetensorError

        def full(tensors, filename, metadata=None):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr(cache, "save_file", full)
    target = mnt / "deep" / "w.safetensors"
    with pytest.raises(OSError, match=f"no space left to write {target} \\(\\d+ MB free"):
        cache.save_tensors(target, {"a": torch.zeros(1_000_000)})  # 4 MB on a 2 MB disk
    assert os.listdir(target.parent) == [], "temporary files were left on the full disk"


# ---- 5. the header is checksummed ---------------------------------------------------------------
def test_an_edited_step_in_the_header_is_corrupt_and_retrained(tmp_path, capsys):
    straight = TR.train(*make_run(12), run_dir=tmp_path / "a", progress=False)
    TR.train(*make_run(12), run_dir=tmp_path / "b", progress=False, max_steps=8)
    ckpt = tmp_path / "b" / TR.CKPT
    raw = ckpt.read_bytes()
    assert raw.count(b'\\"step\\": 8,') == 1
    ckpt.write_bytes(raw.replace(b'\\"step\\": 8,', b'\\"step\\": 4,'))  # same length: a valid file
    with pytest.raises(cache.CorruptCheckpoint, match="header"):
        cache.load_tensors(ckpt)
    resumed = TR.train(*make_run(12), run_dir=tmp_path / "b", progress=False)
    assert resumed.resumed_from == 0 and "corrupt" in capsys.readouterr().err
    same_weights(straight.net.state_dict(), resumed.net.state_dict())
    same_weights(straight.ema.state_dict(), resumed.ema.state_dict())


# ---- 6. a torn log line ----------------------------------------------------------------------------
def test_a_torn_last_log_line_is_tolerated_and_a_bad_one_named(tmp_path, capsys):
    first = TR.train(*make_run(10), run_dir=tmp_path, progress=False)
    log = tmp_path / "log.jsonl"
    with open(log, "a") as f:
        f.write('{"step": 15, "images": 9')  # the write a crash or a full disk cut short
    again = TR.train(*make_run(10), run_dir=tmp_path, progress=False)
    assert again.loaded and again.log == first.log
    assert "cut short" in capsys.readouterr().err
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0][:20], *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=f"{log}, line 1"):
        TR.train(*make_run(10), run_dir=tmp_path, progress=False)


# ---- 7. EMA snapshots ---------------------------------------------------------------------------------
def test_a_corrupt_or_missing_snapshot_is_recomputed(tmp_path, capsys):
    def run():
        net, loss_fn, data_, cfg = make_run(8)
        return net, loss_fn, data_, dataclasses.replace(cfg, snapshot_every_images=3 * cfg.batch_size)

    first = TR.train(*run(), run_dir=tmp_path, progress=False)
    snaps = first.snapshots
    assert sorted(snaps) == [192, 384, 512]
    want = {k: {n: t.clone() for n, t in cache.load_tensors(p)[0].items()} for k, p in snaps.items()}  # not mmapped
    raw = bytearray(snaps[192].read_bytes())
    raw[-1] ^= 0x01
    snaps[192].write_bytes(bytes(raw))
    snaps[384].unlink()  # what the old remedy said to do
    again = TR.train(*run(), run_dir=tmp_path, progress=False)
    assert sorted(again.snapshots) == [192, 384, 512]
    for k, p in again.snapshots.items():
        same_weights(want[k], cache.load_tensors(p)[0])
    same_weights(first.ema.state_dict(), again.ema.state_dict())
    assert list(tmp_path.glob("ema-192.safetensors.corrupt-*")) and "corrupt" in capsys.readouterr().err
    assert TR.train(*run(), run_dir=tmp_path, progress=False).loaded  # whole again: loads


# ---- 8. safetensors' own temporary files --------------------------------------------------------------
SAFETENSORS_TMP = ".tmp??????"  # what safetensors' writer writes beside its target before its rename
def test_a_killed_writers_safetensors_temporary_is_cleaned(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    code = ("import sys, torch; from ddpm_lib import cache\n"
            "while True: cache.save_tensors(sys.argv[1], {'a': torch.zeros(4_000_000)})")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run / "w.safetensors")], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list(run.glob(SAFETENSORS_TMP)):
            pass
        proc.send_signal(signal.SIGKILL)  # mid-write, with safetensors' temporary file in place
    finally:
        proc.kill()
        proc.wait()
    orphans = list(run.glob(SAFETENSORS_TMP))
    assert orphans, "the writer was not caught mid-write"
    young = run / ".tmpYOUNG1"
    young.write_bytes(b"\0")  # another writer's, being written now: kept by a writer without the lock
    old = time.time() - 86400  # a day old
    for p in orphans:
        os.utime(p, (old, old))
    assert set(orphans) <= set(cache.remove_orphans(run)) and young.exists()
    young.rename(run / ".tmpKILLED")
    TR.train(*make_run(4), run_dir=run, progress=False)  # holds the run's lock: every orphan goes
    assert not list(run.glob(".tmp*")) and not list(run.glob("*.tmp"))


# ---- 12. a model counted once on the run card -----------------------------------------------------------
def test_a_re_run_cell_counts_each_model_once():
    from ddpm_lib.notebook import training_summary

    class Interrupt(Exception):
        pass

    def cell(interrupt_at=None):  # a notebook cell training two models
        TR.train_cached("cellA", *make_run(6), progress=False)
        net, loss_fn, data_, cfg = make_run(8)
        if interrupt_at is not None:
            class Interrupting(type(loss_fn)):  # the same objective (the same cache key), stopped at a step
                def __call__(self, model, batch):
                    if batch.step == interrupt_at:
                        raise Interrupt
                    return super().__call__(model, batch)

            loss_fn.__class__ = Interrupting
        return TR.train_cached("cellB", net, loss_fn, data_, cfg, progress=False, checkpoint_every_s=1e-9)

    with TR.RunLog() as log:
        with pytest.raises(Interrupt):
            cell(interrupt_at=5)
        cell()  # re-run: A loads, B resumes
    assert training_summary(log).startswith("2 models: 2 trained"), training_summary(log)
    assert [(e["name"], e["loaded"], e["calls"]) for e in log.entries] == [("cellA", False, 2), ("cellB", False, 1)]
    assert log.entries[1]["resumed_from"] == 5
    TR.train_cached("cellA", *make_run(6), progress=False)  # after the block: not in the log
    assert len(log.entries) == 2


# ---- 2. a preset checked as a whole at start ----------------------------------------------------------
WHOLE = [  # (chapter, parameters that passed the old start check and crashed after training, the message)
    ("06_glide", {"big_channels": 20}, r"big_channels must be a multiple of 8 \(the GroupNorm groups.*16 or 24"),
    ("07_unclip", {"scales": (2.0, 3.0)}, r"scales must contain 1\.0 \(the claims compare guidance with s = 1\)"),
    ("04_adm", {"scales": ()}, r"scales must contain 0\.0, 1\.0"),
    ("06_glide", {"clip_scales": ()}, "clip_scales must not be empty"),
    ("07_unclip", {"per_caption": 1}, "per_caption must be >= 2"),
    ("07_unclip", {"pca_dims": 500}, r"pca_dims must be at most 32 \(.*clip_dim = 32"),
    ("05_dalle", {"n_head": 3}, r"n_head must divide n_embd = 32 .*\[1, 2, 4, 8, 16\]"),
    ("04_adm", {"n_samples": 1}, r"n_samples must be >= 4 \(KID"),
    ("04_adm", {"scales": (0.0, 1.0)}, "scales must contain a scale above 1"),
    ("06_glide", {"cfg_claim": 2.0}, r"cfg_claim must be one of the swept cfg_scales \[1\.0, 3\.0\], got 2\.0"),
    ("07_unclip", {"cfg_claim": 5.0}, r"cfg_claim must be one of the swept scales \[1\.0, 3\.0\], got 5\.0"),
]


@pytest.mark.parametrize("chapter, params, must_say", WHOLE, ids=[f"{c}-{next(iter(p))}" for c, p, _ in WHOLE])
def test_a_preset_is_checked_as_a_whole_at_start(chapter, params, must_say):
    from ddpm_lib import notebook, profiles

    with pytest.raises(ValueError, match=must_say):
        profiles.get(chapter, "smoke", **params)
    ns = {}
    nb = notebook.Session(chapter, ns)
    ns.update(profile="smoke", **params)
    with pytest.raises(ValueError, match=must_say):
        nb.start()
    assert nb.card is None, "work started before the check"
    with pytest.raises(SystemExit, match=must_say):
        run_notebook.parse_params(chapter, [f"{k}={v!r}" for k, v in params.items()], "smoke")


def test_each_chapters_presets_sit_under_its_dataclass_in_chapter_order():
    """profiles.py reads chapter by chapter: a dataclass, then the one ``register`` call of its
    three presets, 00 to 09."""
    import ast

    tree = ast.parse((ROOT / "ddpm_lib" / "profiles.py").read_text())
    body = tree.body
    seen = []
    for before, node in zip(body, body[1:]):
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "register":
            chapter = call.args[0].value
            kinds = {k.arg: k.value.func.id for k in call.keywords}
            assert set(kinds) == {"smoke", "cpu", "gpu"}, (chapter, kinds)
            assert isinstance(before, ast.ClassDef) and set(kinds.values()) == {before.name}, chapter
            seen.append(chapter)
    assert seen == sorted(seen) and len(seen) == 10, seen


def test_the_groupnorm_table_matches_the_unet_presets():
    from ddpm_lib import profiles
    from ddpm_lib.nets import unet as U

    assert profiles.UNET_GROUPS == {name: cfg.groups for name, cfg in U.PRESETS.items()}


# ---- 3. the gpu profile without CUDA ------------------------------------------------------------------
def test_the_gpu_profile_is_refused_without_cuda(monkeypatch):
    from ddpm_lib import notebook, profiles

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on this CPU machine, also where a GPU is
    monkeypatch.delenv("DDPM_ALLOW_GPU_PROFILE_ON_CPU", raising=False)
    says = r"profile gpu needs a CUDA GPU.*DDPM_ALLOW_GPU_PROFILE_ON_CPU=1"
    for profile, env in (("gpu", None), ("auto", "gpu")):
        if env:
            monkeypatch.setenv("DDPM_PROFILE", env)
        ns = {}
        nb = notebook.Session("00_forward_process", ns)
        ns.update(profile=profile)
        with pytest.raises(ValueError, match=says):
            nb.start()
    for argv in (["00", "--profile", "gpu"], ["00", "--record", "--profile", "gpu"]):
        with pytest.raises(SystemExit, match=says):
            run_notebook.main(argv)
    monkeypatch.setenv("DDPM_ALLOW_GPU_PROFILE_ON_CPU", "1")  # the explicit override
    ns = {}
    nb = notebook.Session("00_forward_process", ns)
    ns.update(profile="gpu")
    assert nb.start() == profiles.get("00_forward_process", "gpu")
    assert 'DDPM_ALLOW_GPU_PROFILE_ON_CPU=1' in (ROOT / "tools" / "device_session.sh").read_text()


# ---- 9. an unwritable results folder, found at start ----------------------------------------------------
def test_an_unwritable_results_folder_fails_at_start(tmp_path, monkeypatch, make_read_only):
    from ddpm_lib import notebook

    fs = tmp_path / "ro"
    mounted = _mount_tmpfs(fs, "1m")
    try:
        (fs / "results").mkdir()
        make_read_only(fs, mounted)
        for where in (fs / "results", fs / "new" / "results"):
            monkeypatch.setenv("DDPM_RESULTS_DIR", str(where))
            ns = {}
            nb = notebook.Session("00_forward_process", ns)
            ns.update(profile="smoke")
            with pytest.raises(PermissionError, match=f"results folder {where} cannot be written.*DDPM_RESULTS_DIR"):
                nb.start()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(fs)], capture_output=True)


# ---- 10. command-line forms ----------------------------------------------------------------------------
def test_tuples_and_numbers_from_a_command_line_are_accepted(monkeypatch):
    from ddpm_lib import notebook, profiles

    ns = {}
    nb = notebook.Session("04_adm", ns)
    ns.update(profile="smoke", scales="[0.0,1.0,4.0]", train_images="640")  # papermill: -p scales [..], -r train_images 640
    cfg = nb.start()
    assert cfg.scales == (0.0, 1.0, 4.0) and cfg.train_images == 640
    assert profiles.validate("04_adm", {"scales": "(0.0, 1.0, 4.0)"}) == {"scales": (0.0, 1.0, 4.0)}
    with pytest.raises(ValueError, match=r"scales must be a tuple of float, got '0\.0 1\.0'; e\.g\. papermill -p scales"):
        profiles.validate("04_adm", {"scales": "0.0 1.0"})
    assert run_notebook.split_params(" scales=[0.0, 1.0, 4.0] seed=1  data=./a b ") == \
        ["scales=[0.0, 1.0, 4.0]", "seed=1", "data=./a b"]


def test_make_run_passes_brackets_parentheses_and_spaces_intact():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for params in ("scales=(0.0,1.0,4.0) n_samples=1", "scales=[0.0, 1.0, 4.0] n_samples=1"):
        proc = subprocess.run(["make", "-s", "run", "NB=04", "PROFILE=smoke", f"PARAMS={params}", f"VENV={sys.prefix}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        out = proc.stdout + proc.stderr
        # the scales parsed whole; the check of the preset as a whole then stops it, before papermill
        assert proc.returncode != 0 and "n_samples must be >= 4" in out, out[-2000:]
        assert "syntax error" not in out and "running 04_adm" not in out


# ---- 11, 12. relative paths, papermill's warnings, concurrent runs, Ctrl-C, a huge seed --------------------
def _tiny_notebook(path: Path, *cells: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "auto"', metadata={"tags": ["parameters"]}),
                *[nbformat.v4.new_code_cell(c) for c in cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _execute(tmp_path: Path, src: Path, params: dict, env: dict, **popen) -> subprocess.Popen:
    """tools/run_notebook.execute in a process of its own, run from ``tmp_path`` (the user's folder)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import run_notebook as r; a = json.loads(sys.argv[2]); "
            "r.execute(r.Path(a['src']), r.Path(a['dst']), a['params'], r._env())")
    import json

    args = json.dumps(dict(src=str(src), dst=str(tmp_path / "out.ipynb"), params=params))
    return subprocess.Popen([sys.executable, "-c", code, str(ROOT / "tools"), args], cwd=tmp_path, text=True,
                            env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen)


def test_relative_paths_resolve_where_the_command_ran_and_valid_parameters_are_not_unknown(tmp_path, monkeypatch):
    import json

    src = _tiny_notebook(tmp_path / "probe.ipynb", "import os\nprint(os.environ['DDPM_RESULTS_DIR'], "
                                                   "os.environ['DDPM_CACHE'], n_toy, sep='|')")
    proc = _execute(tmp_path, src, {"profile": "smoke", "n_toy": 500},
                    {"DDPM_RESULTS_DIR": "relres", "DDPM_CACHE": "relcache"})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    printed = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    assert printed.strip() == f"{tmp_path / 'relres'}|{tmp_path / 'relcache'}|500"
    assert "Passed unknown parameter" not in err, err[-2000:]
    monkeypatch.chdir(tmp_path)
    assert run_notebook.parse_params("02_ddpm", ["data=./my_images"]) == {"data": str(tmp_path / "my_images")}


def _running_cell(path: Path, source: str) -> bool:
    """Does papermill's partial notebook at ``path`` show the cell holding ``source`` as running?"""
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return False
    return any(source in "".join(c.get("source", "")) and
               c.get("metadata", {}).get("papermill", {}).get("status") == "running" for c in cells)


@pytest.mark.timeout(420)
def test_ctrl_c_ends_quietly_and_says_where_the_partial_notebook_is(tmp_path):
    src = _tiny_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(120)")
    # as from a terminal: SIGINT at its default, whatever this test process inherited (a CI job started in
    # the background runs with SIGINT ignored, and Python then never turns it into KeyboardInterrupt)
    proc = _execute(tmp_path, src, {"profile": "smoke"}, {}, start_new_session=True,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240  # a loaded machine can take long to start a kernel
    while time.time() < deadline and not _running_cell(tmp_path / "out.ipynb", "time.sleep(120)"):
        time.sleep(0.5)
    assert _running_cell(tmp_path / "out.ipynb", "time.sleep(120)"), "the slow cell never started"
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does: the whole foreground group
    t0 = time.time()
    out, err = proc.communicate(timeout=90)
    assert time.time() - t0 < 30, "the run did not stop at Ctrl-C"
    assert f"interrupted: the partial run is in {tmp_path / 'out.ipynb'}" in err, err[-3000:]
    assert err.count("Traceback") == 0, err[-3000:]
    assert (tmp_path / "out.ipynb").exists()


def test_concurrent_runs_of_a_chapter_keep_their_own_executed_notebooks(tmp_path):
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import run_notebook as r\n"
            "with r.executed_path('00_forward_process', 'smoke-test') as out:\n"
            "    print(out, flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(ROOT / "tools")], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        first = Path(holder.stdout.readline().strip())
        with run_notebook.executed_path("00_forward_process", "smoke-test") as second:
            assert first == ROOT / "runs" / "00_forward_process-smoke-test.ipynb"
            assert second != first and second.name == f"00_forward_process-smoke-test-{os.getpid()}.ipynb"
    finally:
        holder.kill()
        holder.wait()
        with contextlib.suppress(FileNotFoundError):
            (ROOT / "runs" / ".00_forward_process-smoke-test.lock").unlink()


def test_a_huge_seed_is_refused_at_start_naming_it():
    from ddpm_lib import notebook

    ns = {}
    nb = notebook.Session("00_forward_process", ns)
    ns.update(profile="smoke", seed=2**64)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 4294967295\], got 18446744073709551616"):
        nb.start()
    with pytest.raises(SystemExit, match="seed must be in"):
        run_notebook.parse_params("00_forward_process", [f"seed={2**64}"])
