"The bench scripts import what objret has (every `from objret.x import y` in bench/ resolves: a restructure cannot break them quietly), and bench/million.py runs small."
import ast, importlib, os, subprocess, sys
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


def test_million_bench_runs_small(tmp_path):
    """bench/million.py end to end on 5,000 images: within the budget (the OPQ matrix's fixed 256 kB included), the
    multi-vector search tuned on held-out images for 95 % finds ≥ 90 % of the exact top 10 of 50 other queries."""
    script = Path(__file__).resolve().parents[1]/"bench"/"million.py"
    r = subprocess.run([sys.executable, str(script), "--images", "5000", "--queries", "50", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=900, env={**os.environ, "OBJRET_PROGRESS": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    row = next(line for line in r.stdout.splitlines() if line.strip().startswith("multi-vector "))
    ram, recall, warm, cold, disk = row.split()[-5:]
    assert float(ram) <= 256 and float(recall.rstrip("%")) >= 90 and float(warm) > 0 and float(disk) >= 0, row
    assert not list(tmp_path.iterdir()), "the bench left its vectors behind"
