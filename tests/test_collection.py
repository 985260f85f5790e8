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
    from objret.collection import n_shards, syncs
    st = ShardStore(out)
    n = n_shards(syncs(out))
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
    assert r.returncode != 0 and "give a text query or --image FILE" in r.stderr


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
    from objret.collection import load_collection
    a, b = load_collection(tmp_path/"whole"), load_collection(tmp_path/"killed")
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
    from objret.collection import RayEngine, build_collection
    kw = dict(method="cluster-clip", shard_size=25, batch_size=25, index=False)
    build_collection(scenes, tmp_path/"local", **kw)
    s = build_collection(scenes, tmp_path/"ray", engine=RayEngine(actors=2), **kw)
    assert (s["images"], s["embedded"], s["shards_written"]) == (200, 200, 8)
    for (va, ta), (vb, tb) in zip(_shards(tmp_path/"local"), _shards(tmp_path/"ray")):
        pd.testing.assert_frame_equal(ta, tb)
        assert va.shape == vb.shape and np.abs(va.astype(np.float32) - vb.astype(np.float32)).max() <= 2e-3


def test_cluster_vectors_independent_of_batching(scenes, tmp_path):
    "Cluster-CLIP's vectors are a function of the image and the settings: batch and shard sizes change none of them."
    from objret.collection import build_collection
    build_collection(scenes, tmp_path/"a", "cluster-clip", shard_size=25, batch_size=25, index=False)
    build_collection(scenes, tmp_path/"b", "cluster-clip", shard_size=40, batch_size=8, index=False)
    (va, ta), (vb, tb) = [(np.concatenate([v for v, _ in sh]), pd.concat([t for _, t in sh], ignore_index=True))
                          for sh in (_shards(tmp_path/"a"), _shards(tmp_path/"b"))]
    assert ta.key.tolist() == tb.key.tolist() and va.shape == vb.shape == (2000, va.shape[1])
    assert np.abs(va.astype(np.float32) - vb.astype(np.float32)).max() <= 2e-3


def test_ray_actor_killed_mid_build(scenes, tmp_path, local_ray, monkeypatch):
    "An actor killed (ray.kill) while embedding a shard: the build finishes, every image exactly once."
    from objret.collection import RayEngine, build_collection, collection_summary, load_collection
    monkeypatch.setenv("OBJRET_FAULT_KILL_SHARD", "2")
    try: s = build_collection(scenes, tmp_path/"c", "clip", engine=RayEngine(actors=2), shard_size=25, index=False)
    except Exception as e:                                   # or a clear error, and the rerun completes it
        monkeypatch.delenv("OBJRET_FAULT_KILL_SHARD")
        s = build_collection(scenes, tmp_path/"c", "clip", engine=RayEngine(actors=2), shard_size=25, index=False)
    assert (tmp_path/"c"/".killed").exists()                 # the actor was killed
    summary = collection_summary(tmp_path/"c")
    assert summary["embedded"] == 200 and summary["unfinished_shards"] == []
    keys = load_collection(tmp_path/"c").items.key
    assert len(keys) == 200 and keys.is_unique


def test_messy_folder(tmp_path):
    "Corrupt, truncated, grayscale, RGBA, 16-bit, 1×1 and 6000×6000 images, unicode and spaces in names: indexed or counted as skipped."
    from objret.collection import build_collection, load_collection
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
    assert set(load_collection(tmp_path/"c").items.key) == {"ok photo.png", "grau ä.png", "rgba.png", "16-bit.png", "1x1.png", "huge 6000.jpg"}


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


NETS = """import torch
def tiny():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2, 1))
"""


def test_own_network_builds_searches_and_refuses_other_weights(scenes, tmp_path):
    "A network of the user's (a module the test writes) by --backbone/--weights/--mean/--std: built, searched from a new process, refused with other weights or none."
    import torch
    (tmp_path/"mynets.py").write_text(NETS)
    sys.path.insert(0, str(tmp_path))
    try:
        import mynets
        for seed in (1, 2):
            torch.manual_seed(seed)
            torch.save(mynets.tiny().state_dict(), tmp_path/f"w{seed}.pt")
    finally: sys.path.remove(str(tmp_path))
    env = {**ENV, "PYTHONPATH": str(tmp_path)}
    net = ["--backbone", "mynets:tiny", "--weights", str(tmp_path/"w1.pt")]
    run = lambda *a: subprocess.run([str(BIN/"objret"), *map(str, a)], capture_output=True, text=True, env=env, cwd=tmp_path)
    r = run("build-index", scenes, tmp_path/"col", "--method", "rmac", *net, "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
            "--shard-size", "100")
    assert r.returncode == 0 and "200 images, 200 embedded" in r.stdout, r.stderr[-2000:]
    man = json.loads((tmp_path/"col"/"manifest.json").read_text())
    assert man["method"]["backbone"] == "mynets:tiny" and man["method"]["mean"] == [0.5] * 3
    query = sorted(scenes.rglob("*.png"))[7]
    r = run("search", tmp_path/"col", "--image", query, *net, "-k", "3", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    hits = [json.loads(l) for l in r.stdout.splitlines()]
    assert hits[0]["key"] == query.relative_to(scenes).as_posix() and hits[0]["score"] > 0.999
    r = run("search", tmp_path/"col", "--image", query)
    assert r.returncode == 1 and "built with a network of yours (backbone='mynets:tiny')" in r.stderr, r.stderr
    r = run("search", tmp_path/"col", "--image", query, "--backbone", "mynets:tiny", "--weights", tmp_path/"w2.pt")
    assert r.returncode == 1 and "are not those the collection was built with" in r.stderr, r.stderr
    shutil.copy(tmp_path/"w1.pt", tmp_path/"moved.pt")                       # the same weights elsewhere: searched as before
    r = run("search", tmp_path/"col", "--image", query, "--backbone", "mynets:tiny", "--weights", tmp_path/"moved.pt", "--json")
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["key"] == hits[0]["key"], r.stderr[-2000:]


def _changed_copy(scenes, dst):
    "A copy of the photos, then changed: 20 added (from a second world), 100 replaced, 10 deleted."
    from objret.synth import object_world
    shutil.copytree(scenes, dst)
    more = sorted((object_world(4, 4, 120, seed=9, progress=False, root=dst.parent/f"{dst.name}-more")/"images").glob("test_*.png"))
    for i, f in enumerate(more[:20]): shutil.copy(f, dst/"album 0"/f"new {i:02d}.png")
    photos = sorted(dst.rglob("photo *.png"))
    for f, g in zip(photos[:100], more[20:120]): shutil.copy(g, f)
    for f in photos[-10:]: f.unlink()
    return dst


def test_sync_killed_resumes_to_the_same_collection(scenes, tmp_path):
    "A sync killed with SIGKILL part-way, then rerun: the same live items and hits as an uninterrupted sync; a second sync at once is refused."
    from objret.collection import collection_summary, load_collection
    cmd = lambda src, out: [str(BIN/"objret"), "build-index", str(src), str(out), "--method", "dense-clip", "--resolution", "128",
                            "--shard-size", "5", "--batch-size", "5"]
    for name in ("whole", "killed"):
        shutil.copytree(scenes, tmp_path/f"src-{name}")
        assert subprocess.run(cmd(tmp_path/f"src-{name}", tmp_path/name), capture_output=True, env=ENV).returncode == 0
        _changed_copy(scenes, tmp_path/f"new-{name}")
        shutil.rmtree(tmp_path/f"src-{name}"); (tmp_path/f"new-{name}").rename(tmp_path/f"src-{name}")   # the folder changed in place
    r = subprocess.run(cmd(tmp_path/"src-whole", tmp_path/"whole"), capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 and "sync: 20 added, 100 changed, 10 removed, 90 unchanged; 120 embedded now" in r.stdout, r.stdout + r.stderr[-2000:]
    p = subprocess.Popen(cmd(tmp_path/"src-killed", tmp_path/"killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    t0 = time.time()
    while not list((tmp_path/"killed").glob("sync_00001.json")) and time.time() - t0 < 300: time.sleep(0.02)
    p.send_signal(signal.SIGSTOP)                                   # paused while it holds the lock: the second sync meets it
    assert p.poll() is None, "the sync finished before it could be paused"
    held = subprocess.run(cmd(tmp_path/"src-killed", tmp_path/"killed"), capture_output=True, text=True, env=ENV)
    p.send_signal(signal.SIGCONT)
    while len(list((tmp_path/"killed").glob("shard_*.done.json"))) < 40 + 8 and time.time() - t0 < 300: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert held.returncode == 1 and "is being written by another process (syncing 'dense-clip': pid" in held.stderr, held.stderr
    r = subprocess.run(cmd(tmp_path/"src-killed", tmp_path/"killed"), capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = collection_summary(tmp_path/"whole"), collection_summary(tmp_path/"killed")
    assert (a["embedded"], a["vectors"]) == (b["embedded"], b["vectors"]) and a["embedded"] == 210
    assert len(list((tmp_path/"killed").glob("shard_*.done.json"))) == 40 + 24            # the killed sync's shards written once
    ca, cb = load_collection(tmp_path/"whole"), load_collection(tmp_path/"killed")
    for q in ("a photo of a blue star", "a photo of a small red circle"):
        ha, hb = ca.search(q, 20), cb.search(q, 20)
        assert ha.key.tolist() == hb.key.tolist() and np.allclose(ha.score, hb.score, atol=2e-3)
