"What spans notebooks: packaging, configuration, the README's commands, and the package seen from outside."
import json, os, re, subprocess, sys, tomllib
from pathlib import Path

import nbformat, yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda name, where they differ


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT/"pyproject.toml").read_text())


def test_environment_yml_has_every_runtime_dependency():
    env = yaml.safe_load((ROOT/"environment.yml").read_text())
    names = set()
    for d in env["dependencies"]:
        if isinstance(d, dict): names |= {_name(x) for x in d.get("pip", [])}
        else: names.add(_name(d))
    extras = _pyproject()["project"]["optional-dependencies"]
    deps = _pyproject()["project"]["dependencies"] + extras["dev"] + extras["gpu"]
    missing = [d for d in deps if CONDA_NAMES.get(_name(d), _name(d)) not in names]
    assert not missing, f"environment.yml lacks {missing}"
    assert len(deps) >= 12


def test_faiss_comes_from_exactly_one_extra():
    "faiss-gpu and faiss-cpu both install the `faiss` module: the base install holds neither, each extra one."
    proj = _pyproject()["project"]
    assert not [d for d in proj["dependencies"] if _name(d).startswith("faiss")]
    extras = proj["optional-dependencies"]
    assert [_name(d) for d in extras["gpu"]] == ["faiss-gpu"] and [_name(d) for d in extras["cpu"]] == ["faiss-cpu"]
    assert not [d for d in extras["dev"] if _name(d).startswith("faiss")]
    assert re.search(r"FAISS\s*\?=\s*gpu", (ROOT/"Makefile").read_text())      # `make install FAISS=cpu` switches


CPU_INDEX_CHECK = """
import sys, tempfile, pathlib, faiss, torch
assert pathlib.Path(faiss.__file__).is_relative_to(sys.argv[1]), faiss.__file__
from objret.index import VectorIndex, faiss_gpu_count
assert faiss_gpu_count() == 0
g = torch.Generator().manual_seed(0)
x = torch.nn.functional.normalize(torch.randn(3000, 32, generator=g), dim=1)
q = x[::30] + 0.05 * torch.randn(100, 32, generator=g)
exact = VectorIndex(32).add(x, counts=[3] * 1000)
ivf = VectorIndex(32, "IVF16,Flat", nprobe=16).train(x).add(x, counts=[3] * 1000)
(s1, i1), (s2, i2) = exact.search(q, k=5), ivf.search(q, k=5)
assert torch.equal(i1, i2) and torch.allclose(s1, s2, atol=1e-5)
assert (i1[:, 0] == torch.arange(0, 1000, 10)).all()
d = pathlib.Path(tempfile.mkdtemp()) / "ix"
ivf.save(d); s3, i3 = VectorIndex.load(d).search(q, k=5)
assert torch.equal(i3, i2)
print("faiss-cpu", faiss.__version__, "ok")
"""


def test_objret_index_runs_on_the_faiss_cpu_wheel(tmp_path):
    "The CPU-only install (`objret[cpu]`): objret.index on faiss-cpu's wheel, without replacing this venv's faiss-gpu."
    target = tmp_path/"faiss-cpu"
    spec = _pyproject()["project"]["optional-dependencies"]["cpu"][0]
    got = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                          "--target", str(target), spec], capture_output=True, text=True)
    if got.returncode and not os.environ.get("CI"):
        import pytest; pytest.skip(f"cannot install {spec} from the package index here: {got.stderr[-300:]}")
    assert got.returncode == 0, got.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", CPU_INDEX_CHECK, str(target)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok" in out.stdout


def test_nbdev3_config():
    nb = _pyproject()["tool"]["nbdev"]
    assert "tags" in nb["allowed_cell_metadata_keys"]      # papermill's parameters cell survives nbdev-clean
    assert nb["lib_path"] == "objret" and nb["tst_flags"].split() == ["gpu", "slow"]  # GPU cells; cells needing the trained tiny CLIP
    assert not (ROOT/"settings.ini").exists()              # nbdev 3 refuses settings.ini


def test_quarto_yml_is_one_file():
    top, link = ROOT/"_quarto.yml", ROOT/"nbs"/"_quarto.yml"
    assert top.is_file() and link.is_symlink() and link.resolve() == top.resolve()
    assert yaml.safe_load(top.read_text())["project"]["type"] == "website"


def test_readme_quick_start_is_two_commands_that_exist():
    readme = (ROOT/"README.md").read_text()
    block = re.search(r"#+\s*Quick ?start.*?```[a-z]*\n(.*?)```", readme, re.S | re.I).group(1)
    cmds = [l.strip() for l in block.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert cmds == ["make reproduce", "make test"]
    targets = re.findall(r"^([a-z-]+):", (ROOT/"Makefile").read_text(), re.M)
    assert {"reproduce", "test"} <= set(targets)
    assert "make test" in (ROOT/".ci"/"run").read_text()   # CI runs the README's test command


def test_readme_is_generated_from_index_notebook(tmp_path):
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--log-level=WARN", "--to", "markdown",
                    str(ROOT/"nbs"/"index.ipynb"), "--output-dir", str(tmp_path), "--output", "README"], check=True)
    got = (tmp_path/"README.md").read_text().replace("](images/", "](nbs/images/")     # as `make readme` rewrites it
    assert got == (ROOT/"README.md").read_text(), "README.md is stale: run `make readme`"
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", got): assert (ROOT/img).is_file(), f"README shows {img}, which is not in the repository"
    assert not re.search(r"\b(TBD|TODO|XXX)\b", got), "README holds a placeholder: fill it with a measured value"


def test_reproduce_notebooks_keep_their_parameters_cell():
    nbs = sorted((ROOT/"nbs").glob("reproduce_*.ipynb"))
    assert nbs
    for f in nbs:
        nb = nbformat.read(f, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), f"{f.name} has no parameters cell"


def test_package_imports_from_outside_the_repo_without_side_effects(tmp_path):
    home = tmp_path/"home-not-created"
    code = ("import objret, objret.core, objret.metrics, objret.index, objret.data, objret.synth, objret.backbones, objret.train, pathlib; "
            "print(objret.__version__); print(pathlib.Path(objret.__file__).resolve())")
    env = {**os.environ, "OBJRET_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    version, path = out.stdout.split()
    assert version == _pyproject_version()
    assert Path(path).parent.name == "objret"
    assert not home.exists(), "importing objret must not create its cache directory"


def _pyproject_version():
    return re.search(r'__version__ = "(.*?)"', (ROOT/"objret"/"__init__.py").read_text()).group(1)


def test_exported_modules_are_generated():
    for f in (ROOT/"objret").glob("*.py"):
        if f.name in ("__init__.py", "_modidx.py"): continue
        assert any("AUTOGENERATED" in l for l in f.read_text().splitlines()[:8]), f"{f.name} was not written by nbdev-export"


def test_shipped_runs_match_their_configs():
    "Every run in objret/weights/ is named by the hash of the config it was trained with, loads, and the default recipes ship."
    import json
    from objret.backbones import cnn_backbone, create_clip
    from objret.open import TinyOpenConfig, load_open_model
    from objret.regions import torchvision_detector
    from objret.train import TinyClipConfig, TinyCnnConfig, TinyDetectorConfig, shipped_dir
    kinds = {"tiny-clip": TinyClipConfig, "tiny-cnn": TinyCnnConfig, "tiny-detector": TinyDetectorConfig, "tiny-open": TinyOpenConfig}
    load = {"tiny-clip": lambda c, p: create_clip(c.model, pretrained=p, device="cpu"),
            "tiny-cnn": lambda c, p: cnn_backbone(c.model, p, device="cpu"),
            "tiny-detector": lambda c, p: torchvision_detector(c.model, p, device="cpu"),
            "tiny-open": lambda c, p: load_open_model(p, c.heads, device="cpu")}
    runs = sorted(d for d in shipped_dir().iterdir() if d.is_dir())
    assert {d.name for d in runs} >= {f"{k}-{c().key()}" for k, c in kinds.items()}
    for d in runs:
        kind, key = d.name.rsplit("-", 1)
        cfg = kinds[kind](**json.loads((d/"config.json").read_text()))
        assert cfg.key() == key, f"{d.name}: its config.json hashes to {cfg.key()}"
        assert load[kind](cfg, d/"model.pt") is not None


def test_readme_gives_every_data_set_layout():
    "Each entry of objret.data.DATASETS appears in the README's layout table with every file it expects."
    from objret.data import DATASETS
    rows = {}
    for line in (ROOT/"README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3:
            for name in re.findall(r"`([a-z0-9_]+)`", cells[0]): rows[name] = cells[1]
    assert set(DATASETS) <= set(rows), f"README lacks the layout of {sorted(set(DATASETS) - set(rows))}"
    for name, spec in DATASETS.items():
        for f in spec["files"]:
            f = f.replace(name, "<name>") if name in f and name.startswith(("oxford", "paris", "rox", "rpar")) else f
            assert f"`{f}`" in rows[name], f"README: {name} should list `{f}` (objret.data.DATASETS)"


def _outputs(nb): return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]

def test_chapter_notebooks_keep_small_outputs():
    "Chapters hold their outputs (`make outputs`): under 200 kB each, no stderr, every figure shown once; the viz chapter shows figures."
    nbs = sorted((ROOT/"nbs").glob("*.ipynb"))
    for f in nbs:
        nb = nbformat.read(f, as_version=4)
        size = sum(len(json.dumps(c.get("outputs", []))) for c in nb.cells)
        assert size <= 200_000, f"{f.name}: outputs of {size // 1000} kB; run `make outputs` (it shrinks them)"
        assert not [o for o in _outputs(nb) if o.output_type == "stream" and o.name == "stderr"], f"{f.name} keeps stderr output"
        for c in nb.cells:
            imgs = [o.output_type for o in getattr(c, "outputs", []) if any(k.startswith("image/") for k in o.get("data", {}))]
            assert not ("display_data" in imgs and "execute_result" in imgs), f"{f.name}: cell {c.get('id')} shows its figure twice"
    viz = nbformat.read(ROOT/"nbs"/"70_viz.ipynb", as_version=4)
    assert sum(any(k.startswith("image/") for k in o.get("data", {})) for o in _outputs(viz)) >= 5, "70_viz shows no figures: run `make outputs`"


# imports of objret's modules that no runtime dependency brings, each with why the plain install may lack it
OPTIONAL_IMPORTS = {
    "faiss": "exactly one of the extras gpu / cpu brings it (both install the `faiss` module)",
    "ray": "the ray extra: only `engine='ray'` needs it",
    "IPython": "present wherever a notebook runs; objret.viz only displays figures through it when it is",
}


def _third_party_imports():
    "Top-level names of every absolute import in objret/*.py, with a file that imports each."
    import ast
    found = {}
    for f in sorted((ROOT/"objret").glob("*.py")):
        for n in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module] if isinstance(n, ast.ImportFrom) and not n.level else []
            for m in names:
                top = m.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("objret", "__future__"): found.setdefault(top, f.name)
    return found


def test_every_runtime_import_is_a_declared_dependency():
    "What a module of objret imports comes with `pip install objret` (or is an optional extra, named above with its reason)."
    from importlib.metadata import packages_distributions
    dists = packages_distributions()
    deps = {_name(d) for d in _pyproject()["project"]["dependencies"]}
    found = _third_party_imports()
    assert {"torch", "open_clip", "pandas", "fastapi"} <= set(found)         # the check sees the imports
    missing = {top: f for top, f in found.items() if top not in OPTIONAL_IMPORTS
               and not {_name(d) for d in dists.get(top, [top])} & deps}
    assert not missing, f"imported by objret but not in [project] dependencies: {missing}"


NAMESPACE_CHECK = """
import sys, types
ns = types.ModuleType("objret"); ns.__path__ = [sys.argv[1]]; ns.__file__ = None   # what a folder named objret/ makes of it
sys.modules["objret"] = ns
try: import objret.core
except ImportError as e: print(e)
"""


def test_a_namespace_package_is_refused(tmp_path):
    "objret imported as a namespace package (a clone named objret/ in the working folder) says so, naming the folder."
    out = subprocess.run([sys.executable, "-c", NAMESPACE_CHECK, str(ROOT/"objret")], capture_output=True, text=True, cwd=tmp_path)
    assert "objret was imported as a namespace package from" in out.stdout and str(ROOT/"objret") in out.stdout, out.stdout + out.stderr
