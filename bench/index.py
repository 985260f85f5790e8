"""Multi-vector retrieval: objret.index (faiss) against a NumPy brute-force max-similarity, measured in one run.

    python bench/index.py                      # 20k items × 50 vectors × 512-d, 1k queries (≈2 GB of vectors)
    python bench/index.py --items 2000 --queries 200   # a quick look

Prints queries/s of each method (best of --rounds rounds, the methods interleaved, each warmed up first), its ratio to
the brute force, the share of queries whose ranked top k is the brute force's, the overlap with the exact top k, and
the bytes stored per item.
"""
import argparse, time

import numpy as np
import torch

from objret.index import VectorIndex, overlap_at_k
from objret.metrics import topk_recall


def world(n_items, per_item, dim, n_queries, seed=0):
    "Items of `per_item` unit vectors around shared centres (≈5 vectors a centre); queries: noisy copies of one vector."
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(max(n_items * per_item // 5, 1), dim, generator=g), dim=1)
    n = n_items * per_item
    X = torch.empty(n, dim)
    for s in range(0, n, 1 << 18):   # in chunks, to keep peak memory near the data's size
        e = min(s + (1 << 18), n)
        X[s:e] = centres[torch.randint(0, len(centres), (e - s,), generator=g)] + 0.5 / dim**.5 * torch.randn(e - s, dim, generator=g)
    X = torch.nn.functional.normalize(X, dim=1)
    src = torch.randint(0, n, (n_queries,), generator=g)
    Q = torch.nn.functional.normalize(X[src] + 0.5 / dim**.5 * torch.randn(n_queries, dim, generator=g), dim=1)
    return X.numpy(), Q.numpy(), (src // per_item)


def numpy_bruteforce(X, Q, per_item, k, batch=32):
    "Every query–vector inner product with NumPy, max over each item's vectors, top k items."
    starts = np.arange(0, len(X), per_item)
    out = np.empty((len(Q), k), np.int64)
    for s in range(0, len(Q), batch):
        S = np.maximum.reduceat(Q[s:s + batch] @ X.T, starts, axis=1)          # (b, n_items)
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        out[s:s + batch] = np.take_along_axis(top, np.argsort(-np.take_along_axis(S, top, 1), 1), 1)
    return out


def best_of(fns, Q, rounds):
    "Each search's best wall time on queries Q over `rounds` interleaved rounds (A, B, C, A, B, C, …), after a warm-up."
    for f in fns.values(): f(Q[:16])
    best, out = dict.fromkeys(fns, float("inf")), {}
    for _ in range(rounds):
        for name, f in fns.items():
            t = time.perf_counter(); out[name] = f(Q); best[name] = min(best[name], time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=20_000); ap.add_argument("--vectors", type=int, default=50)
    ap.add_argument("--dim", type=int, default=512); ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--factory", default="IVF1024,PQ64x4fs", help="approximate faiss index to compare")
    ap.add_argument("--nprobe", type=int, default=32); ap.add_argument("--overfetch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (best of)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batches", default="", help="also: exact search by query batch size, torch kernel against faiss's "
                                                  "flat search + regroup, e.g. 1,16,200,1000 (how objret.index picks)")
    a = ap.parse_args()
    import faiss
    from objret.index import regroup_max
    X, Q, target = world(a.items, a.vectors, a.dim, a.queries)
    counts = np.full(a.items, a.vectors)
    print(f"{a.items} items × {a.vectors} vectors × {a.dim}-d ({X.nbytes / 2**30:.2f} GiB float32; clustered: ≈5 vectors "
          f"a centre), {a.queries} queries, k={a.k}; best of {a.rounds} interleaved rounds after a warm-up")
    ex = VectorIndex(a.dim, "Flat", device=a.device).add(X, counts)
    # objret's exact path: a torch kernel, or (CPU, batches of objret.index.FAISS_EXACT_MIN_QUERIES or more) faiss's own
    # flat search for k × (vectors per item) neighbours, regrouped — here bare, for comparison
    fl = faiss.IndexFlatIP(a.dim); fl.add(X)
    owner = torch.arange(a.items).repeat_interleave(a.vectors)
    def faiss_flat(q):
        D, V = fl.search(q, a.k * a.vectors)
        return regroup_max(torch.from_numpy(D), owner[torch.from_numpy(V)], a.k)[1].numpy()
    ap_ = VectorIndex(a.dim, a.factory, device=a.device, nprobe=a.nprobe, overfetch=a.overfetch)
    t = time.perf_counter(); ap_.add(X, counts); t_train = time.perf_counter() - t
    approx = f"objret {a.factory} nprobe={a.nprobe} overfetch={a.overfetch} ({ap_.device})"
    fns = {"numpy brute force": lambda q: numpy_bruteforce(X, q, a.vectors, a.k),
           f"objret exact (Flat, {ex.device})": lambda q: ex.search(q, a.k)[1].numpy(),
           f"objret exact, batches of 256 (torch kernel)": lambda q: ex.search(q, a.k, batch_size=256)[1].numpy(),
           "faiss IndexFlatIP, k×vectors neighbours, regrouped": faiss_flat,
           approx: lambda q: ap_.search(q, a.k)[1].numpy()}
    secs, ids = best_of(fns, Q, a.rounds)
    brute = ids["numpy brute force"]
    nbytes = {"numpy brute force": a.vectors * a.dim * 4, f"objret exact (Flat, {ex.device})": ex.nbytes() / a.items,
              f"objret exact, batches of 256 (torch kernel)": ex.nbytes() / a.items,
              "faiss IndexFlatIP, k×vectors neighbours, regrouped": a.vectors * a.dim * 4, approx: ap_.nbytes() / a.items}
    t_brute = secs["numpy brute force"]
    print(f"\n{'method':58s} {'queries/s':>10s} {'× brute':>8s} {'bytes/item':>11s} {'same top-k %':>13s} {'overlap %':>10s}")
    for name in fns:
        same = float((ids[name] == brute).all(1).mean()) * 100                  # identical ranked top-k lists
        overlap = overlap_at_k(ids[name], brute) * 100                         # with the exact top k
        print(f"{name:58s} {a.queries / secs[name]:10.1f} {t_brute / secs[name]:8.2f} {nbytes[name]:11.0f} {same:13.1f} {overlap:10.1f}")
    print(f"\n(approximate index built and trained in {t_train:.1f} s; "
          f"source-item R@{a.k}: brute {topk_recall(torch.from_numpy(brute), target, ks=(a.k,))[f'R@{a.k}']:.1f}, "
          f"approximate {topk_recall(torch.from_numpy(ids[approx]), target, ks=(a.k,))[f'R@{a.k}']:.1f})")

    if a.batches: by_batch(ex, fl, owner, Q, a)


def by_batch(ex, fl, owner, Q, a):
    "The exact search per query batch size: objret's torch kernel against faiss's flat search + regroup, interleaved."
    import objret.index as oi
    saved = oi.FAISS_EXACT_MIN_QUERIES, oi.FAISS_EXACT_SINGLE
    def torch_kernel(q):
        oi.FAISS_EXACT_MIN_QUERIES, oi.FAISS_EXACT_SINGLE = 1 << 62, False
        try: return ex.search(q, a.k, batch_size=len(q))[1].numpy()
        finally: oi.FAISS_EXACT_MIN_QUERIES, oi.FAISS_EXACT_SINGLE = saved
    def faiss_flat(q):
        D, V = fl.search(q, a.k * a.vectors)
        return oi.regroup_max(torch.from_numpy(D), owner[torch.from_numpy(V)], a.k)[1].numpy()
    print(f"\nexact search by batch size (queries/s; best of {a.rounds} interleaved rounds, each over ≥ 200 queries):")
    for nq in (int(v) for v in a.batches.split(",")):
        q, reps = Q[:nq], max(1, 200 // nq)
        fns = {"torch": lambda q: [torch_kernel(q) for _ in range(reps)][-1], "faiss": lambda q: [faiss_flat(q) for _ in range(reps)][-1]}
        secs, ids = best_of(fns, q, a.rounds)
        print(f"  {nq:5d} queries a batch: torch kernel {reps * nq / secs['torch']:7.1f}, faiss flat + regroup "
              f"{reps * nq / secs['faiss']:7.1f} → torch {secs['faiss'] / secs['torch']:.2f}× faiss; same lists "
              f"{(ids['torch'] == ids['faiss']).all(1).mean():.2f}; objret uses "
              f"{'faiss' if (nq == 1 and saved[1]) or nq >= saved[0] else 'torch'}")


if __name__ == "__main__":
    main()
