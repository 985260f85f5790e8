"bench/gpu_check.py, the script for the first GPU: without CUDA it says so and exits 0; its steps run on the CPU."
import os, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/"bench"/"gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run its checks")
def test_no_cuda_device_exits_cleanly():
    r = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("no CUDA device"), (r.stdout, r.stderr[-2000:])


def test_steps_on_the_cpu():
    "The same steps with --device cpu --quick (Ray's step is tested in test_collection): every row ok."
    r = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--skip", "Ray build"],
                       capture_output=True, text=True, timeout=900, env={**os.environ, "OBJRET_PROGRESS": "0"})
    rows = [l for l in r.stdout.splitlines() if l.startswith("| ") and not l.startswith("| step")]
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert [l.split(" | ")[0][2:] for l in rows] == ["gpu cells", "Dense-CLIP", "Cluster-CLIP", "faiss", "build"]
    assert all(l.split(" | ")[3] == "ok" for l in rows), r.stdout
