"""Collections at scale: pipeline overhead, Ray against local, memory of a build, and multi-vector search on a simulated
million-image Cluster-CLIP collection. Every ratio is measured in one run of this script.

    python bench/collection.py            # full sizes (≈ 1 h on a 2-core CPU, most of it the 1M-image search)
    python bench/collection.py --quick    # small sizes, a few minutes: the same code paths

1. Pipeline overhead: images/s of `build_collection(engine="local")` (decode, prepare, embed, write shards) against
   the bare model (`Method.embed`) on the same images already decoded and prepared; then engine="ray" with 2 actors
   against local, on this machine (Ray started on 127.0.0.1, no dashboard, stopped at the end). Each pair is timed
   interleaved (A, B, A, B, A, B) after a warm-up of each, best of 3.
2. Memory: peak RSS of a build of N and of 10·N images (each in its own process): streaming means it barely grows.
3. Search: a simulated Cluster-CLIP collection of M images × R representatives (random unit vectors, D-d, generated in
   seeded chunks, never all in memory; written to disk in fp16 as a collection's shards hold them), with planted
   matches (each query has 10 images holding one representative at cosine 0.60–0.90 to it). The approximate
   multi-vector index (IVF-PQ, ± `refine`: candidates re-scored exactly from the vectors on disk) against a
   single-vector index over the same images in the same family (one vector per image, lists of the same length), with
   recall@10 of the exact multi-vector top 10 (computed by streaming the same chunks), q/s and bytes per image of each.
4. Where search recall is lost (`limit`): on the first tenth of the same collection, every list probed, the share of
   the planted matches among the top C vectors that IVF-PQ returns, for C = 8, 32 and 128 per item wanted (what
   `refine` can re-score): what the PQ code keeps of random vectors, apart from the coarse quantiser.
"""
import argparse, json, math, os, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np


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


def chunk(c, chunk_images, reps, dim, seed, planted):
    "Chunk c of the simulated collection: (chunk_images·reps, dim) unit vectors, seeded by (seed, c), with the planted matches."
    rng = np.random.default_rng([seed, c])
    x = rng.standard_normal((chunk_images * reps, dim), dtype=np.float32)
    lo = c * chunk_images
    for img, slot, q, cos in planted.get(c, ()):
        noise = x[(img - lo) * reps + slot]
        noise -= (noise @ q) * q; noise /= np.linalg.norm(noise)
        x[(img - lo) * reps + slot] = cos * q + math.sqrt(1 - cos ** 2) * noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def search(n_images, reps, dim, n_queries, chunk_images, code, nlist, tmp, cos=(0.60, 0.90), seed=0):
    import faiss, torch
    from objret.index import VectorIndex
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n_queries, dim)).astype(np.float32); Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    planted = {}                                                               # chunk -> [(image, slot, query vector, cosine)]
    for qi in range(n_queries):
        for j, img in enumerate(rng.choice(n_images, 10, replace=False)):
            planted.setdefault(int(img) // chunk_images, []).append((int(img), int(rng.integers(reps)), Q[qi], cos[0] + (cos[1] - cos[0]) * j / 9))
    n_chunks = math.ceil(n_images / chunk_images)
    # the same family for both: IVF with a flat quantiser and the same PQ code; lists of the same length (nlist ∝ vectors)
    multi = VectorIndex(dim, f"IVF{nlist},{code}", device="cpu", overfetch=32)        # refine re-scores the items among 320 vectors
    single = VectorIndex(dim, f"IVF{max(1, nlist // reps)},{code}", device="cpu")
    for idx in (multi, single): faiss.extract_index_ivf(idx.index).cp.niter = 0   # centroids: a random sample (k-means gains nothing on uniform data)
    t0 = time.perf_counter()
    tr = chunk(0, min(chunk_images, 20000), reps, dim, seed + 1, {})
    multi.train(tr, max_train=200_000); single.train(tr.reshape(-1, reps, dim).mean(1), max_train=200_000)
    t_train = time.perf_counter() - t0
    vm = np.lib.format.open_memmap(Path(tmp)/"multi.npy", "w+", np.float16, (n_images * reps, dim))   # the vectors on disk, as a collection's shards hold them
    vs = np.lib.format.open_memmap(Path(tmp)/"single.npy", "w+", np.float16, (n_images, dim))
    best = np.full((n_queries, 10), -np.inf, np.float32); best_i = np.full((n_queries, 10), -1, np.int64)
    t0 = time.perf_counter()
    for c in range(n_chunks):
        m = min(chunk_images, n_images - c * chunk_images); lo = c * chunk_images
        x = chunk(c, chunk_images, reps, dim, seed, planted)[:m * reps]
        g = x.reshape(m, reps, dim).mean(1); g /= np.linalg.norm(g, axis=1, keepdims=True)
        multi.add(x, np.full(m, reps), np.arange(lo, lo + m)); single.add(g, None, np.arange(lo, lo + m))
        vm[lo * reps:(lo + m) * reps] = x; vs[lo:lo + m] = g
        s = (torch.from_numpy(x) @ torch.from_numpy(Q).T).view(m, reps, n_queries).amax(1).T.numpy()   # exact multi-vector scores, streamed
        cs, ci = np.concatenate([best, s], 1), np.concatenate([best_i, np.arange(lo, lo + m)[None].repeat(n_queries, 0)], 1)
        o = np.argsort(-cs, axis=1)[:, :10]
        best, best_i = np.take_along_axis(cs, o, 1), np.take_along_axis(ci, o, 1)
        print(f"  chunk {c + 1}/{n_chunks} added", end="\r", flush=True)
    vm.flush(); vs.flush()
    t_add = time.perf_counter() - t0
    print(f"search: {n_images} images × {reps} vectors ({n_images * reps} vectors, {dim}-d, planted cosine {cos[0]:.2f}–{cos[1]:.2f}), "
          f"{n_queries} queries, one at a time, 1 faiss thread; training {t_train:.0f} s, adding {t_add:.0f} s")
    faiss.omp_set_num_threads(1)
    rows = []
    for p in ((8, 16, 32, 64, 128, 256) if n_images < 100_000 else (64, 128, 256, 512, 1024, 2048)):   # lists probed: the same work per
        r = {}                                                                                          # list (lists of the same length)
        for name, idx, src in (("single", single, vs), ("multi", multi, vm)):
            nprobe = min(p, faiss.extract_index_ivf(idx.index).nlist)
            faiss.ParameterSpace().set_index_parameter(idx.index, "nprobe", nprobe)
            for refine in (None, src):
                idx.search(Q[:4], 10, refine=refine)
                t0 = time.perf_counter(); _, ids = idx.search(Q, 10, batch_size=1, refine=refine); dt = (time.perf_counter() - t0) / n_queries
                rec = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(ids.numpy(), best_i)])
                r[name, refine is not None] = (1 / dt, rec, nprobe)
                print(f"  nprobe {nprobe:4d} {name + (' + refine' if refine is not None else ''):15s} {idx.factory:16s}: "
                      f"{1 / dt:6.0f} q/s, recall@10 of exact multi-vector {100 * rec:5.1f} %, {idx.nbytes() / n_images:6.1f} bytes/image", flush=True)
        rows.append((p, r))
    faiss.omp_set_num_threads(os.cpu_count())
    b = multi.nbytes() / n_images
    for refine in (False, True):
        ok = [(p, r) for p, r in rows if r["multi", refine][1] >= 0.95]
        what = "multi-vector" + (" + refine (fetched vectors re-scored from the fp16 vectors on disk)" if refine else "")
        if ok:
            p, r = ok[0]
            print(f"  → {what}: recall {100 * r['multi', refine][1]:.1f} % (goal ≥ 95 %) at nprobe {p}; latency "
                  f"{r['single', False][0] / r['multi', refine][0]:.2f}× the single-vector index at nprobe {r['single', False][2]} (goal ≤ 2×), {b:.0f} bytes/image (goal ≤ 256)")
        else: print(f"  → {what}: no nprobe tried reached 95 % recall of the exact multi-vector top 10 (best {100 * max(r['multi', refine][1] for _, r in rows):.1f} %); {b:.0f} bytes/image")


def limit(n_images, reps, dim, n_queries, chunk_images, code, nlist, cos=(0.60, 0.90), seed=0):
    "Share of the planted matches among IVF-PQ's top C vectors, every list probed: the code's limit, not the probing's."
    import faiss
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n_queries, dim)).astype(np.float32); Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    planted, truth = {}, [set() for _ in range(n_queries)]
    for qi in range(n_queries):
        for j, img in enumerate(rng.choice(n_images, 10, replace=False)):
            truth[qi].add(int(img))
            planted.setdefault(int(img) // chunk_images, []).append((int(img), int(rng.integers(reps)), Q[qi], cos[0] + (cos[1] - cos[0]) * j / 9))
    x = np.concatenate([chunk(c, chunk_images, reps, dim, seed, planted) for c in range(math.ceil(n_images / chunk_images))])[:n_images * reps]
    owner = np.repeat(np.arange(n_images), reps)
    idx = faiss.index_factory(dim, f"IVF{nlist},{code}", faiss.METRIC_INNER_PRODUCT)
    idx.train(x[rng.choice(len(x), min(len(x), 200_000), replace=False)]); idx.add(x)
    faiss.ParameterSpace().set_index_parameter(idx, "nprobe", nlist)
    for per in (8, 32, 128):
        _, I = idx.search(Q, 10 * per)
        held = np.mean([len(set(owner[I[q]].tolist()) & truth[q]) / 10 for q in range(n_queries)])
        print(f"limit: {n_images} images × {reps} ({dim}-d), IVF{nlist},{code}, all lists probed: the top {10 * per:5d} vectors "
              f"hold {100 * held:5.1f} % of the planted top 10", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: the same code, in minutes")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: pipeline, memory, search, limit")
    a = ap.parse_args()
    os.environ.setdefault("OBJRET_PROGRESS", "0")
    skip = set(a.skip.split(","))
    tmp = tempfile.mkdtemp(prefix="objret-bench-coll-")
    try:
        if "pipeline" not in skip:
            for res in ((64,) if a.quick else (128, 64)): pipeline(400 if a.quick else 2000, tmp, res)   # 128 px: Dense-CLIP's 2× native; 64: native
        if "memory" not in skip: memory(200 if a.quick else 2000, tmp)
        if "search" not in skip:
            if a.quick: search(20_000, 10, 128, 50, 5_000, "PQ8x6", 1024, tmp)
            else: search(1_000_000, 10, 512, 200, 50_000, "PQ16x6", 8192, tmp)
        if "limit" not in skip:
            if a.quick: limit(2_000, 10, 128, 50, 1_000, "PQ8x6", 102)
            else: limit(100_000, 10, 512, 200, 50_000, "PQ16x6", 819)
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
