"The bench scripts import what objret has: every `from objret.x import y` in bench/ resolves (a restructure cannot break them quietly)."
import ast, importlib
from pathlib import Path

import pytest

BENCH = sorted((Path(__file__).resolve().parents[1]/"bench").glob("*.py"))


@pytest.mark.parametrize("script", BENCH, ids=lambda p: p.name)
def test_bench_imports_resolve(script):
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("objret"):
            mod = importlib.import_module(node.module)
            missing += [f"{node.module}.{a.name}" for a in node.names if not hasattr(mod, a.name)]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("objret"): importlib.import_module(a.name)
    assert not missing, f"{script.name} imports what objret does not have: {missing}"


def test_the_check_sees_a_missing_name(tmp_path, monkeypatch):
    "The same walk finds a name that objret lacks."
    bad = tmp_path/"bad.py"; bad.write_text("from objret.collection import list_source\n")
    with pytest.raises(AssertionError, match="objret.collection.list_source"): test_bench_imports_resolve(bad)
