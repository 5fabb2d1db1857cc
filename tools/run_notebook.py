"""Run chapter notebooks through papermill: the engine behind `make run`, `make smoke`, `make record`.

    python tools/run_notebook.py 00_forward_process --profile cpu [--param n_toy=500 ...]
    python tools/run_notebook.py --all --profile smoke
    python tools/run_notebook.py 00_forward_process --record [--profile gpu]

A notebook is named by its stem (``00_forward_process``), its number (``00``) or its path. The
notebook, the profile and the parameter names are checked before papermill starts, and a wrong one
fails at once with the list of valid choices.

``run`` writes the executed notebook to ``runs/<notebook>-<profile>.ipynb`` (kept, for reading).
``--record`` re-executes the committed notebook in place with the cpu profile, taken from
``DDPM_PROFILE`` so that no parameters cell is injected, drops papermill's bookkeeping metadata, and
re-syncs the ``.py`` twin: that is the notebook that gets committed. ``--record --profile gpu`` runs
the same notebook with the gpu profile and writes it to ``book/gpu/<notebook>.ipynb`` instead, titled
as the chapter on one GPU, beside the cpu record and never over it (its results go to
``book/results/gpu/``); the book shows it under "Results" and the claims ledger puts its verdicts
in a second column.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
GPU_RECORDS = ROOT / "book" / "gpu"  # the chapters recorded with the gpu profile (make record NB=.. PROFILE=gpu)
sys.path.insert(0, str(ROOT))


def available() -> list[str]:
    return sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def resolve_notebook(name: str) -> str:
    names = available()
    key = Path(name.strip()).name
    for suffix in (".ipynb", ".py"):
        key = key.removesuffix(suffix)
    matches = [n for n in names if n == key or n.split("_", 1)[0] == key]
    if len(matches) != 1:
        what = "no notebook given" if not key else f"unknown notebook {name!r}"
        raise SystemExit(f"error: {what}; valid choices: {', '.join(names)}")
    return matches[0]


def resolve_profile(profile: str) -> str:
    from ddpm_lib.profiles import PROFILES

    if profile not in PROFILES:
        what = "no profile given" if not profile else f"unknown profile {profile!r}"
        raise SystemExit(f"error: {what}; valid choices: {', '.join(PROFILES)}")
    return profile


def split_params(text: str) -> list[str]:
    """``make run PARAMS="..."`` as NAME=VALUE items: split on the spaces before a ``name=``, so a value may
    hold spaces and brackets (``scales=[0.0, 1.0] seed=1`` -> two items)."""
    return [item for item in re.split(r"\s+(?=[A-Za-z_]\w*=)", text.strip()) if item]


def _from_here(value):
    """A relative path given on the command line (``data=./my_images``) as an absolute one: the kernel runs
    in notebooks/, and the user meant the folder the command was run from."""
    if isinstance(value, str) and (value.startswith(("./", "../", "~")) or ("/" in value and Path(value).exists())):
        return str(Path(value).expanduser().absolute())
    return value


def parse_params(chapter: str, items: list[str], profile: str | None = None) -> dict:
    """NAME=VALUE items, checked before papermill starts: names, types and ranges, and with ``profile``
    the preset as a whole (its cross-field rules)."""
    from ddpm_lib import profiles

    try:
        valid = ["seed", *profiles.fields(chapter)]
    except ValueError:  # a notebook whose chapter has no presets yet: let the notebook judge
        valid = None
    params = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"error: parameter {item!r} must look like name=value")
        key, raw = item.split("=", 1)
        if key == "profile":
            raise SystemExit("error: give the profile with PROFILE=..., not as a parameter")
        if valid is not None and key not in valid:
            raise SystemExit(f"error: unknown parameter {key!r} for {chapter}; valid choices: {', '.join(valid)}")
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key] = _from_here(raw)
    if valid is not None:
        try:  # types and ranges too, before papermill starts (train_images=abc, train_images=0)
            params = profiles.validate(chapter, params)
            if profile is not None:  # and the preset as a whole (06 big_channels=20, 07 cfg_claim not swept)
                profiles.get(chapter, profile, **{k: v for k, v in params.items() if k != "seed"})
        except ValueError as e:
            raise SystemExit(f"error: {e}")
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}  # JSON for papermill
    return params


def _env(profile_env: str | None = None, keep_profile: bool = False) -> dict:
    """The kernel's environment: plain progress bars, offline unless told otherwise; DDPM_PROFILE is
    ``profile_env``, the user's own with ``keep_profile`` (PROFILE=auto), else unset."""
    env = dict(os.environ, DDPM_PLAIN_PROGRESS="1", HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    for name in ("DDPM_RESULTS_DIR", "DDPM_CACHE"):  # relative to where the command ran, not the kernel's notebooks/
        if env.get(name):
            env[name] = str(Path(env[name]).expanduser().absolute())
    if not keep_profile:
        env.pop("DDPM_PROFILE", None)
    if profile_env:
        env["DDPM_PROFILE"] = profile_env
    return env


# papermill in a child process. Its "Passed unknown parameter" warning is dropped: the parameters cell
# declares only profile and seed, and every name passed here was checked against the preset already.
# Ctrl-C reaches this process and papermill (the kernel runs in a session of its own): papermill saves
# the partial notebook and ends the kernel at once (a kernel asked to shut down mid-cell prints a
# traceback of its own), the child ends quietly, and the parent says where the notebook is.
_PAPERMILL = """
import json, logging, os, sys
import papermill as pm
a = json.loads(sys.argv[1])
logging.getLogger("papermill").addFilter(lambda r: not r.getMessage().startswith("Passed unknown parameter"))
try:
    pm.execute_notebook(a["src"], a["dst"], parameters=a["params"], kernel_name="python3", cwd=a["cwd"],
                        progress_bar=sys.stderr.isatty(), shutdown_kernel="immediate")
except KeyboardInterrupt:  # the notebook is saved (papermill's finally); end now, before asyncio reports
    sys.stdout.flush()     # the interrupted cell's task as a traceback ("Task exception was never retrieved")
    sys.stderr.flush()
    os._exit(130)
"""


def execute(src: Path, dst: Path, parameters: dict | None, env: dict) -> float:
    """papermill in a child process (so that the environment applies to the kernel), timed."""
    args = json.dumps(dict(src=str(src), dst=str(dst), params=parameters or {}, cwd=str(NOTEBOOKS)))
    t0 = time.time()
    child = subprocess.Popen([sys.executable, "-c", _PAPERMILL, args], env=env)
    try:
        rc = child.wait()
    except KeyboardInterrupt:  # papermill got the Ctrl-C too: let it save the partial notebook and end
        try:
            child.wait(timeout=60)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            child.terminate()
            child.wait()
        raise SystemExit(f"interrupted: the partial run is in {dst}") from None
    if rc:
        raise SystemExit(f"error: {src.name} failed (papermill exit {rc}); the partial run is in {dst}")
    return time.time() - t0


def strip_papermill(path: Path) -> None:
    """Drop papermill's timing metadata, which changes on every run and means nothing to a reader."""
    nb = json.loads(path.read_text())
    nb.get("metadata", {}).pop("papermill", None)
    for cell in nb["cells"]:
        meta = cell.get("metadata", {})
        for key in ("papermill", "execution"):
            meta.pop(key, None)
        if meta.get("tags") == []:
            del meta["tags"]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def as_gpu_record(nb: dict, name: str) -> dict:
    """An executed notebook as the book's gpu record of chapter ``name``: its title says "on one GPU",
    a note under the title points to the chapter's cpu record and to the ledger, links relative to
    notebooks/ are made relative to book/gpu/, and the jupytext pairing is dropped (the record has no
    .py twin; the chapter's source stays in notebooks/)."""
    nb = json.loads(json.dumps(nb))
    nb.get("metadata", {}).pop("jupytext", None)
    for cell in nb["cells"]:  # links relative to notebooks/ (the Colab badge's image) from book/gpu/
        if cell["cell_type"] == "markdown":
            cell["source"] = "".join(cell["source"]).replace("](../book/", "](../")
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        lines = "".join(cell["source"]).splitlines()
        heading = next((k for k, line in enumerate(lines) if line.startswith("# ")), None)
        if heading is None:
            continue
        lines[heading] = lines[heading].rstrip() + " (on one GPU)"
        cell["source"] = "\n".join(lines)
        note = (f"```{{note}}\nThis page is chapter {name.split('_', 1)[0]} run with the `gpu` profile, recorded with "
                f"`make record NB={name} PROFILE=gpu`: the same code and text, larger data and models; its run card "
                f"below says on which device and how long it took. The chapter as the book reads it is the cpu record, "
                f"{{doc}}`/notebooks/{name}`; the {{doc}}`claims ledger </book/claims>` shows both runs' verdicts "
                f"side by side.\n```")
        nb["cells"].insert(i + 1, {"cell_type": "markdown", "id": f"gpu-record-{name}"[:64], "metadata": {},
                                   "source": note})
        return nb
    raise SystemExit(f"error: {name} has no markdown title ('# ...') to mark as the gpu record")


def sync_pair(nb: Path) -> None:
    """Bring the pair in step first (jupytext takes the newer file as the source), so that an edit
    made to either file is what runs."""
    subprocess.check_call([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(nb)])


@contextlib.contextmanager
def executed_path(name: str, profile: str):
    """``runs/<name>-<profile>.ipynb``, held (a lock) while a run writes it; when another run of the same
    chapter and profile holds it, ``runs/<name>-<profile>-<pid>.ipynb``, so neither overwrites the other."""
    runs = ROOT / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with open(runs / f".{name}-{profile}.lock", "a+") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield runs / f"{name}-{profile}.ipynb"
        except BlockingIOError:
            yield runs / f"{name}-{profile}-{os.getpid()}.ipynb"
        except ImportError:  # Windows: no lock
            yield runs / f"{name}-{profile}.ipynb"


def run(name: str, profile: str, params: dict) -> Path:
    sync_pair(NOTEBOOKS / f"{name}.ipynb")
    with executed_path(name, profile) as out:
        print(f"running {name} with profile {profile}{' ' + str(params) if params else ''} -> {out}")
        # PROFILE=auto means what the README says: DDPM_PROFILE if set, else gpu with CUDA, else cpu
        wall = execute(NOTEBOOKS / f"{name}.ipynb", out, {"profile": profile, **params},
                       _env(keep_profile=profile == "auto"))
    print(f"{name}: done in {wall:.0f} s; executed notebook: {out}")
    return out


def require_clean_tree() -> None:
    """A record's numbers must be tied to code: refuse to record from uncommitted changes (the run card
    would say <commit>+dirty). Outside a git checkout (a copy on a lent machine) the card says 'unknown'."""
    from ddpm_lib import notebook

    changed = notebook.uncommitted(ROOT)
    if changed is None:
        print("warning: not a git checkout: the run card cannot name the commit this record comes from")
    elif changed:
        raise SystemExit("error: uncommitted changes in tracked files; a record must come from a clean commit "
                         "(commit or stash them first):\n  " + "\n  ".join(changed[:20]))


def record(name: str, profile: str) -> None:
    if profile not in ("cpu", "gpu"):
        raise SystemExit("error: a committed notebook carries a cpu or gpu run; use --profile cpu or gpu")
    nb = NOTEBOOKS / f"{name}.ipynb"
    sync_pair(nb)
    require_clean_tree()
    tmp = ROOT / "runs" / f"{name}-record-{profile}.ipynb"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    print(f"recording {name} with profile {profile} (DDPM_PROFILE={profile}, no injected parameters)")
    wall = execute(nb, tmp, None, {**_env(profile), "DDPM_NO_PROGRESS": "1"})
    strip_papermill(tmp)
    if profile == "gpu":  # beside the cpu record, never over it
        dest = GPU_RECORDS / f"{name}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(as_gpu_record(json.loads(tmp.read_text()), name), indent=1, ensure_ascii=False) + "\n")
        tmp.unlink()
        size = dest.stat().st_size / 1e6
        print(f"{name}: recorded with the gpu profile in {wall:.0f} s; {dest.relative_to(ROOT)} is {size:.2f} MB"
              + (" (over the 5 MB limit: fewer or smaller figures)" if size >= 5 else ""))
        return
    os.replace(tmp, nb)
    subprocess.check_call([sys.executable, str(ROOT / "tools" / "sync_repo_url.py")])
    subprocess.check_call([sys.executable, "-m", "jupytext", "--sync", str(nb)])
    size = nb.stat().st_size / 1e6
    print(f"{name}: recorded in {wall:.0f} s; {nb.relative_to(ROOT)} is {size:.2f} MB")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook", nargs="?", default="")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--params", default="", metavar="'NAME=VALUE ...'",
                    help="several at once, as make run PARAMS=... passes them (values may hold spaces)")
    ap.add_argument("--all", action="store_true", help="every notebook in notebooks/")
    ap.add_argument("--record", action="store_true", help="re-execute in place for committing")
    a = ap.parse_args(argv)
    from ddpm_lib import profiles

    if a.profile:  # the gpu profile without CUDA runs for hours: refused before anything starts
        try:
            profiles.require_device(profiles.resolve(a.profile))
        except ValueError as e:
            raise SystemExit(f"error: {e}")
    if a.record:
        record(resolve_notebook(a.notebook), a.profile or "cpu")
        return
    profile = resolve_profile(a.profile or "")
    names = available() if a.all else [resolve_notebook(a.notebook)]
    params = {n: parse_params(n, [*a.param, *split_params(a.params)], profile) for n in names}
    for n in names:
        run(n, profile, params[n])


if __name__ == "__main__":
    main()
