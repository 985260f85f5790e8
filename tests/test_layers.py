"""objret's modules import one way: each only modules below it in `LAYERS`, at the top of the file.

An import inside a function is allowed only where `LOCAL_IMPORTS` gives the reason: an optional extra (Ray), a heavy
library only one path needs, or the command line, which imports a command's work when the command runs."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# bottom-up: a module may import only those before it
LAYERS = ["core", "data",                                                   # the ground
          "geometry", "sources", "backbones", "index", "metrics", "synth", "cluster",
          "train", "regions", "dense",
          "rmac", "composed", "objemb", "open",                             # the papers
          "methods", "engines", "collection", "viz", "serve", "cli"]

# (module, what it imports inside a function) -> why it is not imported at the top
LOCAL_IMPORTS = {
    ("engines", "ray"): "Ray is an optional extra (objret[ray]); only the Ray engine needs it",
    ("cli", "ray"): "Ray is an optional extra (objret[ray]); only --engine ray needs it",
    ("cli", "objret.collection"): "`objret --help` must not pay for torch: a command imports its work when it runs",
    ("cli", "objret.methods"): "as above: the methods' options are read only for `build-index --help`",
    ("cli", "objret.serve"): "as above: `objret serve` imports the web stack only when it runs",
    ("regions", "transformers"): "OWL-ViT regions only: transformers takes seconds to import",
    ("regions", "huggingface_hub"): "OWL-ViT regions only, with transformers",
    ("backbones", "huggingface_hub"): "hub-hosted open_clip weights only",
    ("viz", "IPython"): "figures are displayed inline only where IPython runs",
    ("core", "fcntl"): "POSIX only: FolderLock imports it when it takes a lock, so objret imports elsewhere",
}


def _imports(tree):
    "(node, module name, inside a function) for every import of a module tree."
    inside = set()
    for f in ast.walk(tree):
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(n) for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import): mods = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            mods = ["objret." + n.module if n.level and n.module else "objret" if n.level else n.module]
            if n.level and not n.module: mods = ["objret." + a.name for a in n.names]
        else: continue
        out += [(n, m, id(n) in inside) for m in mods]
    return out


def violations(name:str, src:str) -> list:
    "What breaks the layering in module `name` (its source `src`)."
    bad, rank = [], LAYERS.index(name)
    for n, mod, local in _imports(ast.parse(src)):
        parts = mod.split(".")
        own = parts[0] == "objret" and len(parts) > 1 and parts[1] != "_modidx"
        key = mod if own else parts[0]
        if own:
            if parts[1] not in LAYERS: bad.append(f"{name}:{n.lineno} imports objret.{parts[1]}, which LAYERS does not place")
            elif LAYERS.index(parts[1]) >= rank: bad.append(f"{name}:{n.lineno} imports objret.{parts[1]}, a layer above or beside it")
        if local and (name, key) not in LOCAL_IMPORTS:
            bad.append(f"{name}:{n.lineno} imports {mod} inside a function (import it at the top, or give the reason in LOCAL_IMPORTS)")
    return bad


def _modules():
    return {f.stem: f.read_text() for f in sorted((ROOT/"objret").glob("*.py")) if f.stem not in ("__init__", "_modidx")}


def test_every_module_has_a_layer():
    assert sorted(_modules()) == sorted(m for m in LAYERS if (ROOT/"objret"/f"{m}.py").exists())
    assert set(_modules()) <= set(LAYERS)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_imports_run_one_way_from_the_top(name):
    assert violations(name, _modules()[name]) == []


def test_the_guard_fails_on_what_it_forbids():
    "Fake modules: an upward import, an import inside a function, an unplaced module; and what stays allowed."
    up = "from .collection import build_collection\n"
    local = "def f():\n    from objret.core import digest\n    return digest(1)\n"
    assert violations("metrics", up) == ["metrics:1 imports objret.collection, a layer above or beside it"]
    assert violations("train", local) == [
        "train:2 imports objret.core inside a function (import it at the top, or give the reason in LOCAL_IMPORTS)"]
    assert "which LAYERS does not place" in violations("viz", "from .nowhere import x\n")[0]
    assert violations("open", "from .open_helpers import y\n") != []
    assert violations("engines", "def f():\n    import ray\n") == []                         # an allowed extra
    assert violations("regions", "from .core import digest\nimport torch\n") == []


def sizes(src:str) -> list:
    "Functions of a module source over 60 lines or over 10 parameters (self/cls not counted)."
    out = []
    for n in ast.walk(ast.parse(src)):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = n.args
            params = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - (bool(a.args) and a.args[0].arg in ("self", "cls"))
            lines = n.end_lineno - n.lineno + 1
            if lines > 60 or params > 10: out.append(f"{n.name}: {lines} lines, {params} parameters")
    return out


@pytest.mark.parametrize("name", sorted(_modules()))
def test_functions_stay_small(name):
    "No function over 60 lines or 10 parameters: what takes more is a config dataclass."
    assert not sizes(_modules()[name]), f"objret/{name}.py: {sizes(_modules()[name])}"


def test_the_size_check_fails_on_a_big_function():
    assert sizes("def f(" + ", ".join(f"a{i}" for i in range(11)) + "): pass") == ["f: 1 lines, 11 parameters"]
    assert sizes("def g():\n" + "    x = 1\n" * 61) == ["g: 62 lines, 0 parameters"]
