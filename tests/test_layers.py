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
          "methods", "engines", "collection", "viz", "serve", "commands", "cli"]

BY_NAME = "<by name>"   # importlib.import_module / __import__: the module is named at run time

# (module, what it imports inside a function) -> why it is not imported at the top
LOCAL_IMPORTS = {
    ("engines", "ray"): "Ray is an optional extra (objret[ray]); only the Ray engine needs it",
    ("commands", "ray"): "Ray is an optional extra (objret[ray]); only --engine ray needs it",
    ("cli", BY_NAME): "`objret --help` must not pay for torch, nor `objret search` for the web stack: `cli.load` imports "
                      "the module of the command that runs (its targets are checked to lie below cli)",
    ("backbones", BY_NAME): "a network of the user's, named as 'package.module:factory' (--backbone)",
    ("train", BY_NAME): "objret.train's own file, for the shipped weights (the notebook defining it has no __file__)",
    ("regions", "transformers"): "OWL-ViT regions only: transformers takes seconds to import",
    ("regions", "huggingface_hub"): "OWL-ViT regions only, with transformers",
    ("backbones", "huggingface_hub"): "hub-hosted open_clip weights only",
    ("viz", "IPython"): "figures are displayed inline only where IPython runs",
    ("core", "fcntl"): "POSIX only: FolderLock imports it when it takes a lock, so objret imports elsewhere",
}


def _is_by_name(n) -> bool:
    "Whether node `n` imports a module named at run time (importlib.import_module(...) or __import__(...))."
    if not isinstance(n, ast.Call): return False
    f = n.func
    return (isinstance(f, ast.Attribute) and f.attr == "import_module") or (isinstance(f, ast.Name) and f.id in ("__import__", "import_module"))


def _imports(tree):
    "(node, module name, inside a function) for every import of a module tree; BY_NAME for a module named at run time."
    inside = set()
    for f in ast.walk(tree):
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(n) for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom)) or _is_by_name(n)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import): mods = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            mods = ["objret." + n.module if n.level and n.module else "objret" if n.level else n.module]
            if n.level and not n.module: mods = ["objret." + a.name for a in n.names]
        elif _is_by_name(n): mods = [BY_NAME]
        else: continue
        out += [(n, m, id(n) in inside) for m in mods]
    return out


def violations(name:str, src:str) -> list:
    "What breaks the layering in module `name` (its source `src`)."
    bad, rank = [], LAYERS.index(name)
    for n, mod, local in _imports(ast.parse(src)):
        parts = mod.split(".")
        own = parts[0] == "objret" and len(parts) > 1 and parts[1] != "_modidx"
        key = mod if own or mod == BY_NAME else parts[0]
        if mod == BY_NAME and not local: bad.append(f"{name}:{n.lineno} imports a module by name at its top (import it)")
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
    by_name = "import importlib\ndef f(m):\n    return importlib.import_module(m)\n"
    assert violations("serve", by_name) == [
        "serve:3 imports <by name> inside a function (import it at the top, or give the reason in LOCAL_IMPORTS)"]
    assert violations("cli", by_name) == []                                              # cli.load, with its reason
    assert violations("regions", "from .core import digest\nimport torch\n") == []


def test_commands_load_modules_below_cli():
    "cli's one by-name import loads only modules below it, and each command's work is there."
    from objret.cli import COMMANDS, load                                                # light: no torch
    for target, _, _ in COMMANDS.values():
        mod = target.split(":")[0].split(".")
        assert mod[0] == "objret" and LAYERS.index(mod[1]) < LAYERS.index("cli"), target
        assert callable(load(target))


def test_cli_imports_nothing_heavy():
    "`objret --help` must answer without torch, pandas, faiss or the web stack (a fresh interpreter)."
    import subprocess, sys
    code = ("import sys, objret.cli; from objret.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'faiss', 'fastapi', 'matplotlib', 'objret.collection') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[]", r.stdout + r.stderr


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
