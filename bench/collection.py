"""Collections at scale: pipeline overhead, Ray against local, and memory of a build. Every ratio is measured in one run
of this script.

    python bench/collection.py            # full sizes (≈ 10 min on a 2-core CPU)
    python bench/collection.py --quick    # small sizes, a few minutes: the same code paths

1. Pipeline overhead: images/s of `build_collection(engine="local")` (decode, prepare, embed, write shards) against
   the bare model (`Method.embed`) on the same images already decoded and prepared; then engine="ray" with 2 actors
   against local, on this machine (Ray started on 127.0.0.1, no dashboard, stopped at the end). Each pair is timed
   interleaved (A, B, A, B, A, B) after a warm-up of each, best of 3.
2. Memory: peak RSS of a build of N and of 10·N images (each in its own process): streaming means it barely grows.
Search at scale (a simulated million-image Cluster-CLIP collection within a memory budget, isotropic and clustered
data) is bench/million.py.
"""
import argparse, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path


def images_folder(n, root):
    "A folder of n synthetic 128-px scenes (PNG), and the world it comes from."
    from objret.synth import object_world
    w = object_world(8, 8, n, seed=11, progress=False, root=Path(root)/f"world{n}")
    return w/"images", sorted((w/"images").glob("test_*.png"))


def pipeline(n, tmp, resolution=128, ray_too=True):
    import torch
    from PIL import Image
    from objret.collection import build_collection
    from objret.methods import make_method
    from objret.sources import list_source
    folder, files = images_folder(n, tmp)
    src = list_source(files, root=folder, shard_size=250)
    m = make_method("cluster-clip", device="cpu", resolution=resolution); m.models()   # the model loaded once, outside every timing
    prepared = [m.prepare(Image.open(f).convert("RGB")) for f in files]
    xs, ws = [p[0] for p in prepared], [p[1] for p in prepared]
    def bare():
        t0 = time.perf_counter()
        for s in range(0, n, 64): m.embed(xs[s:s + 64], ws[s:s + 64])
        return time.perf_counter() - t0
    def local(i):
        out = Path(tmp)/f"local{i}"; shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter(); build_collection(src, out, m, index=False); return time.perf_counter() - t0
    bare(); local(0)                                                           # warm-up, both
    tb, tl = zip(*[(bare(), local(i)) for i in (1, 2, 3)])                    # interleaved: bare, local, bare, local, …
    t_bare, t_local = min(tb), min(tl)
    print(f"pipeline, {n} images, cluster-clip (tiny CLIP at {resolution} px, k-means 10), CPU, torch {torch.get_num_threads()} threads:")
    print(f"  bare model (embed on decoded, prepared images): {n / t_bare:.0f} images/s")
    print(f"  engine=local (decode + prepare + embed + write): {n / t_local:.0f} images/s → {t_bare / t_local:.2f}× the bare model (goal ≥ 0.9×)")
    if not ray_too: return
    import ray
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=os.cpu_count(), log_to_driver=False)
    try:
        def on_ray(i):
            out = Path(tmp)/f"ray{i}"; shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter(); build_collection(src, out, m, engine="ray", actors=2, index=False)
            return time.perf_counter() - t0
        tr, tl = zip(*[(on_ray(i), local(10 + i)) for i in (0, 1, 2)])        # interleaved with local, Ray up for both
        t_ray, t_local = min(tr), min(tl)
    finally: ray.shutdown()
    print(f"  engine=ray, 2 actors on {os.cpu_count()} cores (actor start-up included): {n / t_ray:.0f} images/s → {t_local / t_ray:.2f}× local "
          f"(local {n / t_local:.0f} images/s in the same rounds; goal ≥ 0.8×)")


CHILD = r"""
import resource, sys, os
os.environ["OBJRET_PROGRESS"] = "0"
from objret.collection import build_collection
s = build_collection(sys.argv[1], sys.argv[2], "cluster-clip", shard_size=500, index=False, device="cpu")
print(s["embedded"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory(n, tmp):
    folder, files = images_folder(10 * n, tmp)
    rss = {}
    for m in (n, 10 * n):
        lst = Path(tmp)/f"list{m}.txt"; lst.write_text("\n".join(str(f) for f in files[:m]))
        out = Path(tmp)/f"mem{m}"; shutil.rmtree(out, ignore_errors=True)
        r = subprocess.run([sys.executable, "-c", CHILD, str(lst), str(out)], capture_output=True, text=True, check=True)
        got, kb = (int(v) for v in r.stdout.split()[-2:])
        assert got == m, r.stdout
        rss[m] = kb / 1024
    print(f"memory: peak RSS of a build of {n} images {rss[n]:.0f} MB, of {10 * n} images {rss[10 * n]:.0f} MB "
          f"→ +{100 * (rss[10 * n] / rss[n] - 1):.1f} % (goal ≤ 10 %)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: the same code, in minutes")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: pipeline, memory")
    a = ap.parse_args()
    os.environ.setdefault("OBJRET_PROGRESS", "0")
    skip = set(a.skip.split(","))
    tmp = tempfile.mkdtemp(prefix="objret-bench-coll-")
    try:
        if "pipeline" not in skip:
            for res in ((64,) if a.quick else (128, 64)): pipeline(400 if a.quick else 2000, tmp, res)   # 128 px: Dense-CLIP's 2× native; 64: native
        if "memory" not in skip: memory(200 if a.quick else 2000, tmp)
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
