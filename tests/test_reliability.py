"""What a user runs must not break, drift or lose work (papermill parameters, the weights cache,
resume). One test per failure found by trying the book as a new user would; each fails on the code
before the fix.

1. a parameter name bound before the parameters cell (``-p data ...`` replaced the module ``data``);
2. a kill between writing a checkpoint's tensors and its metadata (resume replayed steps);
3. cached weights that depended on what ran before (network inits from the global RNG);
4. the OpenMP guard bypassed when torch is imported first;
5. a corrupt cache file (truncated, NaN) loaded silently or with an error naming nothing;
6. parameter values and types checked only when they crash (``train_images=0``, ``=abc``);
7. ``make run PROFILE=auto`` dropping the user's DDPM_PROFILE;
8. no checkpoint during long training, concurrent runs interleaving, ``make smoke`` ignoring NB,
   a missing folder taken for a Hub id, results following the working directory, a disk-full error
   naming no path.
"""
from __future__ import annotations

import ast
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import torch

from conftest import NOTEBOOK_DIR, ROOT, notebooks, tail
from ddpm_lib import cache, data, notebook, profiles
from ddpm_lib import diffusion as D
from ddpm_lib import schedules as S
from ddpm_lib import objectives as OBJ
from ddpm_lib import train as TR
from ddpm_lib.nets import transformer as GPT_
from ddpm_lib.nets import unet as U
from tests.helpers.setups import make_run, same_weights

sys.path.insert(0, str(ROOT / "tools"))
import run_notebook  # noqa: E402

NOTEBOOKS = notebooks()


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_CACHE", str(tmp_path / "cache"))


_same = same_weights


# ---- 1. parameter names ---------------------------------------------------------------------
def _bound_names(source: str) -> set[str]:
    """Every name a cell binds at module level or in nested blocks (imports, assignments, defs, loops)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_parameter_name_is_bound_before_the_parameters_cell(path: Path):
    """papermill injects its parameters after the ``parameters`` cell: a module or helper bound
    earlier under a parameter's name is silently replaced by a string."""
    cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
    first = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    before = set().union(*(_bound_names(c.source) for c in cells[:first]))
    params = {"profile", "seed", *profiles.fields(path.stem)}
    clash = sorted(before & params)
    assert not clash, f"{path.name} binds {clash} before its parameters cell; `-p {clash[0]} ...` would replace it"


# ---- 2. one atomic checkpoint -----------------------------------------------------------------
class Killed(BaseException):
    """Stands in for SIGKILL at an exact point of a write."""


def test_kill_between_checkpoint_writes_resumes_bit_exact(tmp_path, monkeypatch):
    """Kill right after the first rename of the second checkpoint (formerly: tensors renamed, metadata
    not yet), then resume: the final weights must equal an uninterrupted run's, bit for bit."""
    net, loss_fn, data_, cfg = make_run(20, ckpt_every=5)
    straight = TR.train(net, loss_fn, data_, cfg, run_dir=tmp_path / "straight", progress=False)

    real_replace, renames = os.replace, []

    def replace(src, dst):
        real_replace(src, dst)
        if Path(dst).name == TR.CKPT:
            renames.append(dst)
            if len(renames) == 2:
                raise Killed()  # the second checkpoint's tensors are in place; nothing after that ran

    monkeypatch.setattr(os, "replace", replace)
    net, loss_fn, data_, cfg = make_run(20, ckpt_every=5)
    with pytest.raises(Killed):
        TR.train(net, loss_fn, data_, cfg, run_dir=tmp_path / "killed", progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    orphan = tmp_path / "killed" / f"{TR.CKPT}.x1y2z3.tmp"  # as an older writer left them after kills
    orphan.write_bytes(b"\0" * 1000)

    net, loss_fn, data_, cfg = make_run(20, ckpt_every=5)
    resumed = TR.train(net, loss_fn, data_, cfg, run_dir=tmp_path / "killed", progress=False)
    assert resumed.resumed_from in (5, 10)
    _same(straight.net.state_dict(), resumed.net.state_dict())
    _same(straight.ema.state_dict(), resumed.ema.state_dict())
    assert not list((tmp_path / "killed").glob("*.tmp")), "orphan temporary files were left behind"
    assert [r["step"] for r in resumed.log] == [r["step"] for r in straight.log]


# ---- 3. weights depend on the cache key only ----------------------------------------------------
def _tiny_unet() -> U.UNet:
    return U.UNet(U.preset("tiny8", image_size=8, in_channels=1, out_channels=1, base_channels=8))


def _pair_of_runs(cache_dir: Path, monkeypatch, before_b=None, interrupt_b_at: int | None = None):
    """Train (or load) run A, then train run B, as two notebook cells would."""
    monkeypatch.setenv("DDPM_CACHE", str(cache_dir))
    diff = D.Diffusion(S.linear(50), "eps", "fixed_small")
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(3)).clamp(-1, 1)
    cfg = TR.TrainConfig(train_images=6 * 16, batch_size=16, lr=1e-3)
    TR.train_cached("relA", _tiny_unet(), OBJ.DiffusionObjective(diff), x, cfg, progress=False)
    if before_b:
        before_b()
    obj = OBJ.DiffusionObjective(diff)
    if interrupt_b_at is not None:  # the cell is interrupted at a step, then re-run
        class Interrupting(OBJ.DiffusionObjective):
            def __call__(self, net, batch):
                if batch.step == interrupt_b_at:
                    raise KeyboardInterrupt
                return super().__call__(net, batch)

        with pytest.raises(KeyboardInterrupt):
            TR.train_cached("relB", _tiny_unet(), Interrupting(diff), x, cfg, progress=False)
    return TR.train_cached("relB", _tiny_unet(), obj, x, cfg, progress=False)


def test_cached_weights_do_not_depend_on_what_ran_before(tmp_path, monkeypatch):
    fresh = _pair_of_runs(tmp_path / "c1", monkeypatch)  # A trained, then B
    # A already cached (loaded, so the global RNG is not touched by its training), then B
    _pair_of_runs(tmp_path / "c2", monkeypatch)
    shutil.rmtree(next((tmp_path / "c2" / "runs").glob("relB-*")))
    after_load = _pair_of_runs(tmp_path / "c2", monkeypatch, before_b=lambda: torch.manual_seed(999))
    assert not after_load.resumed_from
    _same(fresh.net.state_dict(), after_load.net.state_dict())
    # B interrupted mid-run, then its cell re-run
    rerun = _pair_of_runs(tmp_path / "c3", monkeypatch, interrupt_b_at=3)
    _same(fresh.net.state_dict(), rerun.net.state_dict())
    # and the caller's RNG does not depend on whether B trained or loaded
    torch.manual_seed(5)
    _pair_of_runs(tmp_path / "c3", monkeypatch)  # both loaded now
    loaded_draw = torch.rand(3)
    torch.manual_seed(5)
    _pair_of_runs(tmp_path / "c4", monkeypatch)  # both trained
    assert torch.equal(loaded_draw, torch.rand(3))


def test_network_init_is_a_function_of_its_config():
    cfg = GPT_.GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_embd=16, n_head=2)
    torch.manual_seed(1)
    a = GPT_.GPT(cfg).state_dict()
    torch.manual_seed(2)
    state = torch.get_rng_state()
    b = GPT_.GPT(cfg).state_dict()
    assert torch.equal(state, torch.get_rng_state()), "building a network moved the global RNG"
    _same(a, b)
    torch.manual_seed(3)
    u1 = _tiny_unet().state_dict()
    _same(u1, _tiny_unet().state_dict())


# ---- 4. the OpenMP guard ---------------------------------------------------------------------------
def _python(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(env_extra or {}, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_openmp_guard_before_and_after_torch():
    ok = _python("import ddpm_lib, os, torch; print(os.environ['OMP_WAIT_POLICY'], '|', ddpm_lib.OMP_GUARD)")
    assert ok.returncode == 0 and ok.stdout.startswith("PASSIVE | passive (set by ddpm_lib"), ok.stdout + ok.stderr
    late = _python("import torch, ddpm_lib; print(ddpm_lib.OMP_GUARD)")
    assert "torch was imported before ddpm_lib" in late.stdout and "Import ddpm_lib first" in late.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_imports_ddpm_lib_before_torch(path: Path):
    src = jupytext.read(path).cells
    code = "\n".join(c.source for c in src if c.cell_type == "code")
    lines = [l.strip() for l in code.splitlines()]
    first_lib = next(i for i, l in enumerate(lines) if l.startswith(("import ddpm_lib", "from ddpm_lib")))
    first_torch = next(i for i, l in enumerate(lines) if l.startswith(("import torch", "from torch")))
    assert first_lib < first_torch, f"{path.name} imports torch before ddpm_lib: the OpenMP guard is bypassed"


# ---- 5. a corrupt cache ---------------------------------------------------------------------------
def test_truncated_checkpoint_is_named_moved_aside_and_retrained(tmp_path, capsys):
    net, loss_fn, data_, cfg = make_run(10)
    first = TR.train(net, loss_fn, data_, cfg, run_dir=tmp_path, progress=False)
    ckpt = tmp_path / TR.CKPT
    ckpt.write_bytes(ckpt.read_bytes()[:-100])  # truncated
    with pytest.raises(cache.CorruptCheckpoint, match=str(ckpt).replace("\\", "\\\\") + ".*rm "):
        TR.load_weights(ckpt, make_run(10)[0])
    net, loss_fn, data_, cfg = make_run(10)
    again = TR.train(net, loss_fn, data_, cfg, run_dir=tmp_path, progress=False)
    assert not again.loaded and again.resumed_from == 0
    assert "corrupt" in capsys.readouterr().err and list(tmp_path.glob(f"{TR.CKPT}.corrupt-*"))
    _same(first.net.state_dict(), again.net.state_dict())


def test_nan_or_altered_payload_is_detected(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    cache.save_tensors(path, {"a": torch.ones(4)}, {"step": 1})
    assert cache.load_tensors(path)[1] == {"step": 1}
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01  # one flipped bit in the payload
    path.write_bytes(bytes(raw))
    with pytest.raises(cache.CorruptCheckpoint, match="checksum"):
        cache.load_tensors(path)
    save_file({"a": torch.tensor([1.0, float("nan")])}, str(path), metadata={cache.META_KEY: "{}"})
    with pytest.raises(cache.CorruptCheckpoint, match="non-finite"):
        cache.load_tensors(path)


def test_corrupt_feature_net_is_retrained(tmp_path):
    import dataclasses

    from ddpm_lib import features

    recipe = dataclasses.replace(features.RECIPES["digits"], train_images=256, warmup_images=0, n_train=200, n_test=100)
    first = features.get_extractor("digits", image_size=8, recipe=recipe)
    (run,) = (tmp_path / "cache" / "runs").glob("features-digits8-*")  # the train cache's run directory
    path = run / "checkpoint.safetensors"
    tensors, meta = cache.load_tensors(path)
    key = next(k for k in tensors if k.startswith("ema."))
    tensors[key] = tensors[key] * float("nan")
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={cache.META_KEY: json.dumps(meta)})
    with pytest.raises(cache.CorruptCheckpoint):
        features.get_extractor("digits", image_size=8, recipe=recipe, train=False)
    again = features.get_extractor("digits", image_size=8, recipe=recipe)
    assert again.trained_now and list(path.parent.glob(path.name + ".corrupt-*"))
    assert first.accuracy == again.accuracy


# ---- 6. parameter values ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, must_say", [
    ("train_images", 0, "train_images must be > 0"), ("train_images", "abc", "train_images must be int"),
    ("lr", "fast", "lr must be float"), ("dropout", 1.5, "dropout must be in [0, 1)"),
    ("seed", 1.5, "seed must be int")])
def test_parameter_values_are_checked_at_start(name, value, must_say):
    ns = {}
    nb = notebook.Session("02_ddpm", ns)
    ns.update(profile="smoke", **{name: value})
    with pytest.raises(ValueError, match=must_say.replace("[", r"\[").replace(")", r"\)")):
        nb.start()
    with pytest.raises(SystemExit, match=name):
        run_notebook.parse_params("02_ddpm", [f"{name}={value}"])


def test_presets_pass_their_own_checks_and_training_rejects_an_empty_run():
    import dataclasses

    for ch in profiles.chapters():
        for prof in ("smoke", "cpu", "gpu"):
            profiles.validate(ch, dataclasses.asdict(profiles.PRESETS[ch][prof]))
    # switches that may be off (0) pass; a string choice outside its set fails before any work, naming the choices
    profiles.validate("06_glide", {"p_empty": 0.0, "big_channels": 0, "sr_from": 0})
    profiles.validate("07_unclip", {"p_drop_z": 0.0, "p_drop_caption": 0.0, "p_drop_text": 0.0})
    # a switch given on the command line as `true` / `false` (papermill's -p keeps them strings) is a bool
    assert profiles.validate("09_consistency", {"metric_bias": "false", "scd": "True"}) == {"metric_bias": False, "scd": True}
    with pytest.raises(ValueError, match="metric_bias must be bool"):
        profiles.validate("09_consistency", {"metric_bias": "maybe"})
    with pytest.raises(ValueError, match="p_drop_caption must be in \\[0, 1\\)"):
        profiles.get("07_unclip", "smoke", p_drop_caption=1.0)
    with pytest.raises(ValueError, match="valid choices: \\['logit_laplace', 'gaussian'\\]"):
        profiles.get("05_dalle", "smoke", likelihood="laplace")
    with pytest.raises(ValueError, match="train_images"):
        TR.TrainConfig(train_images=0)


# ---- 7. make run PROFILE=auto ------------------------------------------------------------------------
def _make(*args: str, env_extra: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(["make", "-s", *args, f"VENV={sys.prefix}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.notebook
def test_make_run_auto_keeps_the_users_profile(tmp_path):
    nb = NOTEBOOKS[0].stem
    proc = _make("run", f"NB={nb}", "PROFILE=auto",
                 env_extra=dict(DDPM_PROFILE="smoke", DDPM_CACHE=str(tmp_path / "cache"),
                                DDPM_RESULTS_DIR=str(tmp_path / "results")))
    assert proc.returncode == 0, tail(proc.stdout + proc.stderr)
    res = json.loads((tmp_path / "results" / f"{nb}.json").read_text())
    assert res["run_card"]["profile"] == "smoke"


# ---- 8. the smaller ones ------------------------------------------------------------------------------
def test_long_training_checkpoints_by_time_and_resumes(tmp_path):
    def run():  # no step-based checkpoints; uniform t, so a wrapped loss carries no sampler state
        return make_run(12, t_sampler="uniform", loss="simple")

    net, loss_fn, data_, cfg = run()
    straight = TR.train(net, loss_fn, data_, cfg, run_dir=tmp_path / "a", progress=False)

    class Interrupt(Exception):
        pass

    net, loss_fn, data_, cfg = run()

    def interrupted(model, batch):
        if batch.step == 7:
            raise Interrupt
        return loss_fn(model, batch)

    with pytest.raises(Interrupt):
        TR.train(net, interrupted, data_, cfg, run_dir=tmp_path / "b", progress=False, checkpoint_every_s=1e-9)
    net, loss_fn, data_, cfg = run()
    resumed = TR.train(net, loss_fn, data_, cfg, run_dir=tmp_path / "b", progress=False)
    assert resumed.resumed_from == 7
    _same(straight.net.state_dict(), resumed.net.state_dict())
    assert TR.CHECKPOINT_EVERY_S <= 600


def test_two_concurrent_runs_take_turns(tmp_path):
    run = tmp_path / "run"
    worker = [sys.executable, str(ROOT / "tests/helpers/train_worker.py"), "--run-dir", str(run), "--steps", "20",
              "--slow", "0.03"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([*worker, "--out", str(tmp_path / f"w{i}.safetensors")], cwd=ROOT, env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    steps = [json.loads(l)["step"] for l in (run / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), f"duplicated or interleaved log rows: {steps}"
    assert any("waiting for another process" in e for e in errs)
    from safetensors.torch import load_file

    _same(load_file(tmp_path / "w0.safetensors"), load_file(tmp_path / "w1.safetensors"))


def test_make_smoke_honours_nb_and_rejects_another_profile():
    proc = _make("smoke", "NB=99_no_such_chapter", timeout=60)
    assert proc.returncode != 0 and "unknown notebook" in proc.stdout + proc.stderr
    proc = _make("smoke", "PROFILE=cpu", timeout=60)
    assert proc.returncode != 0 and "smoke profile only" in proc.stdout + proc.stderr


def test_missing_folder_is_an_error_and_a_fallback_is_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    for name in ("./nope", "images/missing", "a/b/c", "nope/"):
        with pytest.raises(ValueError, match="no directory at"):
            data.load(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ns = {}
    nb = notebook.Session("02_ddpm", ns)
    ns.update(profile="smoke")
    nb.start()
    train, test = nb.load_pair("mnist", 8, "digits")
    assert train.name == "digits" and len(test) > 0
    assert any("fallback: mnist -> digits" in n for n in nb.card.notes)


def test_results_go_to_the_book_wherever_the_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DDPM_RESULTS_DIR", raising=False)
    ns = {}
    nb = notebook.Session("00_forward_process", ns)
    ns.update(profile="smoke")
    nb.start()
    assert nb.results_path() == ROOT / "runs" / "results" / "00_forward_process.json"


def test_a_run_with_its_own_parameters_never_writes_over_the_books_results(monkeypatch):
    monkeypatch.delenv("DDPM_RESULTS_DIR", raising=False)
    field = profiles.fields("00_forward_process")[0]
    value = getattr(profiles.get("00_forward_process", "cpu"), field)
    for extra, where in (({}, "book"), ({"seed": 0}, "book"), ({field: value}, "runs"), ({"seed": 1}, "runs")):
        ns = {}
        nb = notebook.Session("00_forward_process", ns)
        ns.update(profile="cpu", **extra)
        nb.start()
        assert nb.results_path().parent == ROOT / where / "results", extra
        assert any("runs/results" in n for n in nb.card.notes) == (where == "runs")
    # the preset's gpu run is recorded beside the cpu one, never over it (without CUDA: with the override)
    monkeypatch.setenv(profiles.GPU_ON_CPU, "1")
    for extra, where in (({}, Path("book/results/gpu")), ({"seed": 1}, Path("runs/results"))):
        ns = {}
        nb = notebook.Session("00_forward_process", ns)
        ns.update(profile="gpu", **extra)
        nb.start()
        assert nb.results_path() == ROOT / where / "00_forward_process.json", extra


def test_disk_full_names_the_path(tmp_path, monkeypatch):
    def full(tensors, filename, metadata=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "save_file", full)
    target = tmp_path / "deep" / "w.safetensors"
    with pytest.raises(OSError, match=f"no space left to write {str(target)}"):
        cache.save_tensors(target, {"a": torch.ones(2)})
    assert not list(target.parent.glob("*.tmp"))


def test_a_new_config_field_at_its_default_keeps_old_cache_keys():
    import dataclasses

    from ddpm_lib import cache

    @dataclasses.dataclass(frozen=True)
    class Old:
        a: int = 1

    @dataclasses.dataclass(frozen=True)
    class New:
        a: int = 1
        b: str = dataclasses.field(default="x", metadata=cache.OMIT_DEFAULT)

    Old.__name__ = New.__name__ = "Cfg"
    assert cache.config_hash(Old()) == cache.config_hash(New())
    assert cache.config_hash(New(b="y")) != cache.config_hash(Old())


def test_a_fields_range_is_its_own_not_its_names_in_another_chapter():
    import dataclasses

    # each chapter's fields carry their bound; none comes from a name shared with another chapter
    assert profiles.bound_of("09_consistency", "toy_warmup") == profiles.OPEN_FRACTION
    assert profiles.bound_of("08_dalle3", "p_second") == profiles.FRACTION
    assert profiles.bound_of("02_ddpm", "train_images") == profiles.POSITIVE
    assert profiles.bound_of("02_ddpm", "seed") == profiles.ZERO_OK
    with pytest.raises(ValueError, match=r"toy_warmup must be in \(0, 1\)"):
        profiles.get("09_consistency", "smoke", toy_warmup=0.0)
    # a preset value outside its field's range fails its own check when made, naming the field
    with pytest.raises(ValueError, match=r"p_empty must be in \[0, 1\)"):
        dataclasses.replace(profiles.PRESETS["06_glide"]["smoke"], p_empty=1.0)
    # a new field is positive unless it says otherwise
    @dataclasses.dataclass(frozen=True)
    class Toy:
        width: int = 3
        share: float = profiles.ruled(0.5, bound=profiles.FRACTION)

    profiles.check(Toy())
    with pytest.raises(ValueError, match="share must be in"):
        profiles.check(Toy(share=2.0))
    with pytest.raises(ValueError, match="bound must be one of"):
        profiles.ruled(1, bound="small")
