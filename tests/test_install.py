"""What a user installs is what is tested: a fresh venv with only `pip install '.[cpu]'` (no dev extras), then the
command line, a small build and search, and the tutorial, run from outside the repository.

It takes minutes (the install copies torch), so `make test-install` runs it (CI does); plain `make test` skips it."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not os.environ.get("OBJRET_TEST_INSTALL"),
                                reason="a fresh venv install takes minutes: `make test-install` runs it (OBJRET_TEST_INSTALL=1)")


def _run(cmd, cwd, env, timeout=1200):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    "A fresh venv holding objret[cpu] and nothing of the dev extras."
    d = tmp_path_factory.mktemp("fresh")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_NO_CACHE_DIR="1", OBJRET_HOME=str(d/"home"), OBJRET_PROGRESS="0", MPLBACKEND="Agg")
    _run([sys.executable, "-m", "venv", d/"venv"], d, env)
    _run([d/"venv"/"bin"/"python", "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{ROOT}[cpu]"], d, env)
    yield d, d/"venv"/"bin", env
    shutil.rmtree(d, ignore_errors=True)                 # about 6 GB: never leave it behind


def test_fresh_install_has_no_dev_tools(venv):
    d, bin, env = venv
    r = _run([bin/"python", "-c", "import importlib.util as u; print([m for m in ('nbdev', 'pytest', 'ray', 'sklearn') if u.find_spec(m)])"], d, env)
    assert r.stdout.strip() == "[]", r.stdout
    r = _run([bin/"python", "-c", "import objret, pathlib; print(pathlib.Path(objret.__file__).resolve())"], d, env)
    assert not Path(r.stdout.strip()).is_relative_to(ROOT), "the fresh venv must use its installed copy, not the repository"


def test_fresh_install_runs_the_cli(venv):
    "`objret --help`, then a build and a search of a small folder, from the shell."
    d, bin, env = venv
    assert "build-index" in _run([bin/"objret", "--help"], d, env).stdout
    assert "--method" in _run([bin/"objret", "build-index", "--help"], d, env).stdout
    _run([bin/"python", "-c", "from objret.synth import object_world; import shutil, pathlib; "
          "w = object_world(4, 4, 12, seed=1, progress=False); p = pathlib.Path('photos'); p.mkdir(); "
          "[shutil.copy(f, p) for f in sorted((w/'images').glob('test_*.png'))]"], d, env)
    r = _run([bin/"objret", "build-index", "photos", "col", "--method", "cluster-clip", "--resolution", "128"], d, env)
    assert "12 images, 12 embedded, 0 skipped" in r.stdout, r.stdout
    r = _run([bin/"objret", "search", "col", "a photo of a red circle", "-k", "3", "--json"], d, env)
    hits = [json.loads(l) for l in r.stdout.splitlines()]
    assert [h["rank"] for h in hits] == [1, 2, 3] and all(h["key"].endswith(".png") for h in hits), r.stdout


def test_fresh_install_runs_the_tutorial(venv):
    "The tutorial notebook, every cell, with the fresh venv's kernel (papermill and Jupyter are runtime dependencies)."
    d, bin, env = venv
    nb = d/"tutorial.ipynb"
    shutil.copy(ROOT/"nbs"/"tutorial_own_images.ipynb", nb)
    _run([bin/"papermill", nb, d/"tutorial.out.ipynb", "-k", "python3", "--cwd", d], d, env)
    out = json.loads((d/"tutorial.out.ipynb").read_text())
    assert not [o for c in out["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
