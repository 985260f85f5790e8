"""Multi-vector search at 100k and 1M images within 256 bytes of RAM per image, as a collection runs it. One run:

    python bench/million.py --images 100000 --data clustered     # ≈ 10 min on a 2-core CPU
    python bench/million.py --images 1000000 --data isotropic    # ≈ 1–2 h; 10 GB of fp16 vectors on disk

A simulated Cluster-CLIP collection: N images × 10 unit vectors of 512-d, generated in seeded chunks and written to
disk in fp16 as a collection's shards hold them. Two kinds of data:
- `isotropic`: Gaussian vectors, with planted matches (each query has 10 images holding one vector at cosine
  0.60–0.90 to it): the worst case for inverted lists (no structure), the data of the earlier bench;
- `clustered`: a mixture around 300 centres plus a shared mean, with anisotropic noise whose variance decays as a
  power law over randomly rotated axes (90 % of it in ~150 of the 512 dimensions), as real CLIP embeddings have (a
  few hundred concepts, a common direction, a steep PCA spectrum); queries drawn the same way. `--spectrum flat`
  gives isotropic noise within each cluster instead: the top 10 is then decided by noise alone (a limit case).
What objret does (`objret.index`): `choose_factory` for the budget (4-bit fast-scan PQ, flat up to 2M vectors, IVF
beyond), `tune_search` on 200 held-out images of the collection (one vector each, its own image left out) for 95 % of
the exact top 10, and every search re-ranks its candidates from the fp16 vectors on disk (`refine`). Against it, the
single-vector index users would otherwise build: one mean vector per image in an `IVF,Flat` index tuned the same way
for 95 % of its own exact top 10.
Printed per index: RAM bytes per image (`VectorIndex.nbytes`), recall@10 of the exact top 10 on 200 other queries,
queries/s one at a time (warm page cache; the two indexes interleaved, a quarter of the queries each in turn, after a
warm-up), and with a cold page cache (the vector file evicted with
posix_fadvise(DONTNEED) before each query) the bytes read from disk per query (/proc/self/io) and queries/s.
"""
import argparse, math, os, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

from objret.collection import ExactTopK, map_rows
from objret.index import VectorIndex, choose_factory, drop_own, overlap_at_k, tune_search

D, R, CENTRES = 512, 10, 300


def world(kind, spectrum="power", seed=0):
    "What every chunk shares: the centres, the mean, and the noise's scales and axes (clustered)."
    rng = np.random.default_rng([seed, 99])
    c = rng.standard_normal((CENTRES, D)).astype(np.float32); c /= np.linalg.norm(c, axis=1, keepdims=True)
    mu = rng.standard_normal(D).astype(np.float32); mu *= 0.6 / np.linalg.norm(mu)
    scale = np.arange(1, D + 1, dtype=np.float32) ** -0.45 if spectrum == "power" else np.ones(D, np.float32)
    scale *= 0.9 / np.linalg.norm(scale)                                   # noise of norm ≈ 0.9 against a centre of 1
    axes = np.linalg.qr(rng.standard_normal((D, D)))[0].astype(np.float32) if spectrum == "power" else np.eye(D, dtype=np.float32)
    return dict(kind=kind, centres=c, mu=mu, noise=scale[:, None] * axes)


def draw(w, n, rng):
    "n unit vectors of the world's kind."
    if w["kind"] == "isotropic": x = rng.standard_normal((n, D), dtype=np.float32)
    else: x = w["mu"] + w["centres"][rng.integers(CENTRES, size=n)] + rng.standard_normal((n, D), dtype=np.float32) @ w["noise"]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunk(w, c, images, planted, seed=0):
    "Chunk c: (images·R, D) vectors, seeded by (seed, c), with the planted matches (isotropic)."
    x = draw(w, images * R, np.random.default_rng([seed, c]))
    for img, slot, q, cos in planted.get(c, ()):
        v = x[img * R + slot] - (x[img * R + slot] @ q) * q; v /= np.linalg.norm(v)
        x[img * R + slot] = cos * q + math.sqrt(1 - cos ** 2) * v
    return x


def read_bytes():
    with open("/proc/self/io") as f: return int(next(l for l in f if l.startswith("read_bytes")).split()[1])


def evict(path):
    with open(path, "rb") as f: os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def measure(multi, single, Q, exact_m, exact_s, path, rounds=4, n_cold=50):
    """recall@10 of each index against its exact top 10, and queries/s one at a time, the two interleaved (a quarter of
    the queries through each in turn, after a warm-up of both); then the multi-vector index from a cold page cache: the
    bytes read from disk per query and queries/s."""
    refine = map_rows(path)                                              # the re-rank's vectors, as a collection maps them
    multi.search(Q[:4], 10, refine=refine); single.search(Q[:4], 10)     # warm-up, both
    ids_m, ids_s, t_m, t_s = [], [], 0.0, 0.0
    for part in np.array_split(np.arange(len(Q)), rounds):
        t0 = time.perf_counter(); ids_m += [multi.search(Q[i:i + 1], 10, refine=refine)[1].numpy() for i in part]; t_m += time.perf_counter() - t0
        t0 = time.perf_counter(); ids_s += [single.search(Q[i:i + 1], 10)[1].numpy() for i in part]; t_s += time.perf_counter() - t0
    del refine                                                           # unmapped, so that evict() empties the cache
    secs, b = 0.0, 0
    for i in range(n_cold):
        evict(path); b0 = read_bytes(); t0 = time.perf_counter()
        multi.search(Q[i:i + 1], 10, refine=map_rows(path))              # mapped anew: mapped pages are not evicted
        secs += time.perf_counter() - t0; b += read_bytes() - b0
    return ((overlap_at_k(np.concatenate(ids_m), exact_m), len(Q) / t_m, n_cold / secs, b / n_cold),
            (overlap_at_k(np.concatenate(ids_s), exact_s), len(Q) / t_s))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--data", choices=("isotropic", "clustered"), default="clustered")
    ap.add_argument("--spectrum", choices=("power", "flat"), default="power", help="clustered data: the noise's spectrum")
    ap.add_argument("--budget", type=float, default=256, help="RAM bytes per image for the multi-vector index")
    ap.add_argument("--factory", default=None, help="the multi-vector index (default: choose_factory for the budget)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=20_000, help="images generated at a time")
    ap.add_argument("--dir", default=None, help="where the fp16 vectors go (default: a temporary folder)")
    a = ap.parse_args()
    os.environ.setdefault("OBJRET_PROGRESS", "0")
    n, w, rng = a.images, world(a.data, a.spectrum), np.random.default_rng(1)
    Q = draw(w, a.queries, rng)
    planted = {}
    if a.data == "isotropic":
        for qi in range(a.queries):
            for j, img in enumerate(rng.choice(n, 10, replace=False)):
                planted.setdefault(int(img) // a.chunk, []).append((int(img) % a.chunk, int(rng.integers(R)), Q[qi], 0.60 + 0.30 * j / 9))
    held = np.sort(rng.choice(n, 200, replace=False))                    # held-out images for the tuning
    tmp = Path(tempfile.mkdtemp(prefix="objret-bench-million-", dir=a.dir))
    try:
        path = tmp/"vectors.npy"
        vm = np.lib.format.open_memmap(path, "w+", np.float16, (n * R, D))
        means = np.empty((n, D), np.float32)
        factory = a.factory or choose_factory(n * R, D, a.budget * n, n)
        multi, single = VectorIndex(D, factory, device="cpu"), VectorIndex(D, f"IVF{2 ** round(math.log2(4 * math.sqrt(n)))},Flat", device="cpu")
        t0 = time.perf_counter()
        chunks = range(math.ceil(n / a.chunk))
        for c in chunks:                                                  # write the vectors, as a build's shards
            m = min(a.chunk, n - c * a.chunk); lo = c * a.chunk
            x = chunk(w, c, m, planted)
            vm[lo * R:(lo + m) * R] = x
            g = x.reshape(m, R, D).mean(1); means[lo:lo + m] = g / np.linalg.norm(g, axis=1, keepdims=True)
        vm.flush()
        hq = np.asarray(vm[held * R + rng.integers(R, size=len(held))], np.float32)   # a vector of each held-out image
        t_gen = time.perf_counter() - t0; t0 = time.perf_counter()
        sample = np.sort(rng.choice(n * R, min(n * R, 200_000), replace=False))
        multi.train(np.asarray(vm[sample], np.float32)); single.train(means[np.sort(rng.choice(n, min(n, 200_000), replace=False))])
        t_train = time.perf_counter() - t0; t0 = time.perf_counter()
        ex, ex_held, ex_single, ex_single_held = ExactTopK(Q, 10), ExactTopK(hq, 11), ExactTopK(Q, 10), ExactTopK(means[held], 11)
        for c in chunks:
            m = min(a.chunk, n - c * a.chunk); lo = c * a.chunk
            x, ids = np.asarray(vm[lo * R:(lo + m) * R], np.float32), np.arange(lo, lo + m)
            multi.add(x, np.full(m, R), ids); single.add(means[lo:lo + m], None, ids)
            ex.update(x, np.full(m, R), ids); ex_held.update(x, np.full(m, R), ids)
            ex_single.update(means[lo:lo + m], np.ones(m, np.int64), ids); ex_single_held.update(means[lo:lo + m], np.ones(m, np.int64), ids)
            print(f"  chunk {c + 1}/{len(chunks)} added", end="\r", file=sys.stderr, flush=True)
        t_add = time.perf_counter() - t0
        vecs = map_rows(path)
        tm = tune_search(multi, hq, drop_own(ex_held.ids.numpy(), held, 10), 0.95, refine=vecs, exclude=held)
        del vecs, vm                                                      # unmapped: the cold-cache reads must come from disk
        ts = tune_search(single, means[held], drop_own(ex_single_held.ids.numpy(), held, 10), 0.95, exclude=held)
        print(f"{n} images × {R} vectors ({D}-d, {a.data}{', ' + a.spectrum + ' spectrum' if a.data == 'clustered' else ''}), {a.queries} queries one at a time, torch {torch.get_num_threads()} "
              f"threads; data {t_gen:.0f} s, training {t_train:.0f} s, adding (and the exact top 10) {t_add:.0f} s, load {os.getloadavg()[0]:.1f}")
        print(f"  tuned on 200 held-out images: multi {tm}, single {ts}")
        rm, rs = measure(multi, single, Q, ex.ids.numpy(), ex_single.ids.numpy(), path)
        print(f"  {'index':44s} {'RAM B/image':>11s} {'recall@10':>9s} {'q/s warm':>9s} {'q/s cold':>9s} {'disk B/query cold':>17s}")
        print(f"  {'multi-vector ' + factory + ' + fp16 re-rank':44s} {multi.nbytes() / n:11.0f} {100 * rm[0]:8.1f}% {rm[1]:9.0f} {rm[2]:9.0f} {rm[3]:17.0f}")
        print(f"  {'single-vector (mean) ' + single.factory:44s} {single.nbytes() / n:11.0f} {100 * rs[0]:8.1f}% {rs[1]:9.0f} {'–':>9s} {'–':>17s}")
        print(f"  → multi-vector at {100 * rm[0]:.1f} % recall of its exact top 10 (goal ≥ 95 %), {multi.nbytes() / n:.0f} B/image "
              f"(goal ≤ 256): {rm[1] / rs[1]:.2f}× the single-vector index's queries/s at {100 * rs[0]:.1f} % of its own (goal ≥ 0.5×)")
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
