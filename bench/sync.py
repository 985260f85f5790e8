"""Sync against a full rebuild: a collection of N images whose folder then changes by 1 % (half of it added, a
quarter replaced by other images under the same names, a quarter deleted). Measured in one run:

    python bench/sync.py                  # 20,000 images, the `clip` method (tiny CLIP), ≈ 10 min on a 2-core CPU
    python bench/sync.py --n 2000         # the same code, in a minute

1. the first build of the N images (embed + exact index);
2. a rerun with nothing changed (content ids read, nothing embedded, no lock taken);
3. the sync after the 1 % change (content ids, embed the added and replaced, drop the removed, index);
4. a fresh build of the changed folder into a new collection (what a user without sync would run).
The sync and the fresh build must then answer 16 text queries with the same keys (exact index); the script fails
otherwise. Printed: each step's wall time and the sync's share of the fresh build.
"""
import argparse, os, shutil, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


def scene(rng, size=128):
    "A random scene: a noisy background and 1–4 coloured shapes."
    im = Image.fromarray(rng.integers(60, 200, (size, size, 3), dtype=np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(rng.integers(1, 5)):
        x0, y0 = rng.integers(0, size - 24, 2); w, h = rng.integers(12, 48, 2)
        box, fill = [int(x0), int(y0), int(min(size - 1, x0 + w)), int(min(size - 1, y0 + h))], COLORS[rng.integers(len(COLORS))]
        (d.ellipse if rng.random() < .5 else d.rectangle)(box, fill=fill)
    return im


def write_folder(folder, n, seed=0):
    "n scenes as PNG files in 20 sub-folders; returns their paths."
    rng, files = np.random.default_rng(seed), []
    for i in range(n):
        f = folder/f"album {i % 20:02d}"/f"scene {i:06d}.png"
        f.parent.mkdir(parents=True, exist_ok=True); scene(rng).save(f); files.append(f)
    return files


def change(files, share, seed=1):
    "Change `share` of the folder: half of it added, a quarter replaced (same name, other content), a quarter deleted."
    rng = np.random.default_rng(seed)
    n = max(4, round(share * len(files)))
    picked = rng.choice(len(files), n // 2, replace=False)
    for f in (files[i] for i in picked[:n // 4]): scene(rng).save(f)                 # replaced
    for f in (files[i] for i in picked[n // 4:]): f.unlink()                          # deleted
    for i in range(n - n // 2):                                                       # added
        scene(rng).save(files[0].parent/f"new {i:05d}.png")
    return n - n // 2, n // 4, n // 2 - n // 4


def timed(f, *a, **kw):
    t0 = time.perf_counter(); r = f(*a, **kw); return r, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="images in the first build")
    ap.add_argument("--share", type=float, default=0.01, help="share of the folder that changes")
    ap.add_argument("--method", default="clip", help="the collection's method")
    a = ap.parse_args()
    os.environ.setdefault("OBJRET_PROGRESS", "0")
    import torch
    from objret.collection import build_collection, load_collection
    tmp = Path(tempfile.mkdtemp(prefix="objret-bench-sync-"))
    try:
        folder = tmp/"photos"
        files, t_write = timed(write_folder, folder, a.n)
        kw = dict(method=a.method, shard_size=1000, batch_size=64, device="cpu")
        s0, t_build = timed(build_collection, folder, tmp/"synced", **kw)
        s1, t_same = timed(build_collection, folder, tmp/"synced", **kw)
        assert s1["embedded_now"] == 0, s1
        (added, replaced, deleted), _ = timed(change, files, a.share)
        s2, t_sync = timed(build_collection, folder, tmp/"synced", **kw)
        s3, t_fresh = timed(build_collection, folder, tmp/"fresh", **kw)
        assert s2["embedded_now"] == added + replaced, (s2, added, replaced)
        assert s2["images"] == s3["images"] == a.n + added - deleted, (s2, s3)
        queries = [f"a photo of a {c} {s}" for c in COLORS for s in ("circle", "square")][:20]
        cs, cf = load_collection(tmp/"synced"), load_collection(tmp/"fresh")
        hs, hf = cs.search_many(queries, k=10), cf.search_many(queries, k=10)
        same = all(x.key.tolist() == y.key.tolist() for x, y in zip(hs, hf))
        print(f"sync, {a.method}, {a.n} images (128 px PNG, written in {t_write:.0f} s), CPU, torch {torch.get_num_threads()} threads, "
              f"load average {os.getloadavg()[0]:.1f} at the end:")
        print(f"  first build:                      {t_build:7.1f} s  ({s0['embedded_now']} embedded, then the index)")
        print(f"  rerun, nothing changed:           {t_same:7.1f} s  (content ids of {a.n} files read, 0 embedded)")
        print(f"  sync after {100 * a.share:.0f} % changed:          {t_sync:7.1f} s  (+{added} added, {replaced} replaced, "
              f"-{deleted} deleted: {s2['embedded_now']} embedded)")
        print(f"  fresh build of the changed folder: {t_fresh:7.1f} s")
        print(f"  → the sync takes {t_sync / t_fresh:.3f}× a fresh build ({t_fresh / t_sync:.0f}× faster); "
              f"the same top 10 as the fresh build for {len(queries)} text queries: {same}")
        assert same, "the synced collection answers differently from a fresh build"
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__": main()
