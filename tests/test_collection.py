"Collections end to end: the command line, a build killed with SIGKILL and resumed, the Ray engine against the local one, messy folders."
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OBJRET_PROGRESS": "0"}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    "200 synthetic scenes in a folder with sub-folders: a user's photos."
    from objret.synth import object_world
    w = object_world(8, 8, 200, seed=3, progress=False, root=tmp_path_factory.mktemp("world")/"w")
    d = tmp_path_factory.mktemp("photos")/"my photos"
    for i, f in enumerate(sorted((w/"images").glob("test_*.png"))):
        (d/f"album {i % 4}").mkdir(parents=True, exist_ok=True); shutil.copy(f, d/f"album {i % 4}"/f"photo {i:03d}.png")
    return d


def _shards(out):
    "Every output shard's vectors and items, in shard order."
    from objret.core import ShardStore
    st = ShardStore(out); n = st.manifest["source"]["n_shards"]
    return [(np.load(st.path(i, "vectors.npy")), pd.read_parquet(st.path(i, "items.parquet"))) for i in range(n)]


def test_cli_build_then_search(scenes, tmp_path):
    "objret build-index and objret search, as a user types them."
    r = subprocess.run([str(BIN/"objret"), "build-index", str(scenes), str(tmp_path/"c"), "--method", "cluster-clip", "--shard-size", "50"],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cluster-clip: 200 images, 200 embedded, 0 skipped, 2000 vectors" in r.stdout, r.stdout
    r = subprocess.run([str(BIN/"objret"), "search", str(tmp_path/"c"), "a photo of a red circle", "-k", "5", "--json"],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    hits = [json.loads(l) for l in r.stdout.splitlines()]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5] and all(h["key"].startswith("album ") for h in hits)
    assert all(0 <= h["extent"][0] < h["extent"][2] <= 128 for h in hits)
    r = subprocess.run([str(BIN/"objret"), "search", str(tmp_path/"c")], capture_output=True, text=True, env=ENV)
    assert r.returncode != 0 and "give a text query or image=" in r.stderr


def test_build_killed_with_sigkill_resumes_to_the_same_index(scenes, tmp_path):
    "A build killed half-way, then rerun: the same keys and vectors as an uninterrupted build, only unfinished shards recomputed."
    cmd = lambda out: [str(BIN/"objret"), "build-index", str(scenes), str(out), "--method", "dense-clip", "--shard-size", "20", "--batch-size", "10"]
    assert subprocess.run(cmd(tmp_path/"whole"), capture_output=True, env=ENV).returncode == 0
    p = subprocess.Popen(cmd(tmp_path/"killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    t0 = time.time()
    while len(list((tmp_path/"killed").glob("shard_*.done.json"))) < 3 and time.time() - t0 < 300: time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    done = len(list((tmp_path/"killed").glob("shard_*.done.json")))
    assert 3 <= done < 10, f"{done} shards finished before the kill"
    r = subprocess.run(cmd(tmp_path/"killed"), capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"({10 - done} written now)" in r.stdout, r.stdout                              # only the unfinished shards
    for (va, ta), (vb, tb) in zip(_shards(tmp_path/"whole"), _shards(tmp_path/"killed")):
        assert np.array_equal(va, vb); pd.testing.assert_frame_equal(ta, tb)
    from objret.collection import open_collection
    a, b = open_collection(tmp_path/"whole"), open_collection(tmp_path/"killed")
    assert a.items.key.tolist() == b.items.key.tolist()
    pd.testing.assert_frame_equal(a.search("a photo of a blue star", 10).drop(columns="path"), b.search("a photo of a blue star", 10).drop(columns="path"))


@pytest.fixture(scope="module")
def local_ray():
    "Ray on this machine only (127.0.0.1, no dashboard), stopped after the tests."
    ray = pytest.importorskip("ray")
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_engine_equals_local(scenes, tmp_path, local_ray):
    "engine='ray' (2 actors) writes the same shards as engine='local' on 200 images."
    from objret.collection import build_collection
    kw = dict(method="cluster-clip", shard_size=25, batch_size=25, index=False)
    build_collection(scenes, tmp_path/"local", **kw)
    s = build_collection(scenes, tmp_path/"ray", engine="ray", actors=2, **kw)
    assert (s["images"], s["embedded"], s["shards_written"]) == (200, 200, 8)
    for (va, ta), (vb, tb) in zip(_shards(tmp_path/"local"), _shards(tmp_path/"ray")):
        pd.testing.assert_frame_equal(ta, tb)
        assert va.shape == vb.shape and np.abs(va.astype(np.float32) - vb.astype(np.float32)).max() <= 2e-3


def test_ray_actor_killed_mid_build(scenes, tmp_path, local_ray, monkeypatch):
    "An actor killed (ray.kill) while embedding a shard: the build finishes, every image exactly once."
    from objret.collection import build_collection, collection_summary, open_collection
    monkeypatch.setenv("OBJRET_FAULT_KILL_SHARD", "2")
    try: s = build_collection(scenes, tmp_path/"c", "clip", engine="ray", shard_size=25, actors=2, index=False)
    except Exception as e:                                   # or a clear error, and the rerun completes it
        monkeypatch.delenv("OBJRET_FAULT_KILL_SHARD")
        s = build_collection(scenes, tmp_path/"c", "clip", engine="ray", shard_size=25, actors=2, index=False)
    assert (tmp_path/"c"/".killed").exists()                 # the actor was killed
    summary = collection_summary(tmp_path/"c")
    assert summary["embedded"] == 200 and summary["unfinished_shards"] == []
    keys = open_collection(tmp_path/"c").items.key
    assert len(keys) == 200 and keys.is_unique


def test_messy_folder(tmp_path):
    "Corrupt, truncated, grayscale, RGBA, 16-bit, 1×1 and 6000×6000 images, unicode and spaces in names: indexed or counted as skipped."
    from objret.collection import build_collection, open_collection
    d = tmp_path/"mess"; d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(d/"ok photo.png")
    Image.fromarray(rng.integers(0, 255, (96, 96), dtype=np.uint8)).save(d/"grau ä.png")
    Image.fromarray(rng.integers(0, 255, (96, 96, 4), dtype=np.uint8)).save(d/"rgba.png")
    Image.fromarray((rng.random((96, 96)) * 65535).astype(np.uint16)).save(d/"16-bit.png")
    Image.new("RGB", (1, 1)).save(d/"1x1.png")
    Image.new("RGB", (6000, 6000), "navy").save(d/"huge 6000.jpg", quality=50)
    (d/"corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (d/"truncated.png").write_bytes((d/"ok photo.png").read_bytes()[:120])
    s = build_collection(d, tmp_path/"c", "clip", shard_size=3)
    assert s["images"] == 8 and s["embedded"] + s["skipped"] == 8
    assert sorted(x["key"] for x in s["skipped_images"]) == ["corrupt.jpg", "truncated.png"]
    assert set(open_collection(tmp_path/"c").items.key) == {"ok photo.png", "grau ä.png", "rgba.png", "16-bit.png", "1x1.png", "huge 6000.jpg"}


def test_extract_dense_refuses_other_images_in_the_same_folder(tmp_path):
    "Regression: extract_dense into a folder holding other images' features is refused (its resume is keyed on the file list)."
    import torch
    from objret.backbones import create_clip
    from objret.data import ImageDataset
    from objret.dense import dense_transform, extract_dense
    clip = create_clip("objret-tiny-vit", device="cpu")
    for i in range(4): Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(tmp_path/f"{i}.png")
    extract_dense(clip, ImageDataset(tmp_path, ["0.png", "1.png"], dense_transform(clip)), tmp_path/"f")
    with pytest.raises(FileExistsError, match="inputs: "):
        extract_dense(clip, ImageDataset(tmp_path, ["2.png", "3.png"], dense_transform(clip)), tmp_path/"f")
