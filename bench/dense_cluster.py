"""Dense-CLIP and Cluster-CLIP speed and storage, measured in one run and printed as ratios.

    python bench/dense_cluster.py                       # 512 images at 128 px with the tiny ViT, 5,000-image index
    python bench/dense_cluster.py --model ViT-B-32 --resolution 448 --device cuda   # a real model's shapes, on a GPU

1. Dense extraction vs global-only: seconds for the same images through open_clip's `encode_image` and through
   `objret.dense.global_dense` (global + dense in one pass); the ratio is what the value-path trick costs.
2. Clustering: objret's batched torch k-means and agglomerative (all images at once, on --device) against
   scikit-learn run image by image, on the same dense features.
3. Search: seconds per query and bytes per image in the multi-vector index for global (1 vector), Cluster-CLIP
   (--k vectors) and Dense-CLIP (one per patch) over --index-images images.
Timings use random weights and random images: speed does not depend on what the weights learned. On CUDA the
images/s of extraction and clustering are printed too.
"""
import argparse, time

import torch
import torch.nn.functional as F


def timed(fn, device, repeat=1):
    "Best-of-`repeat` wall time of fn() (CUDA synchronised) and its last result."
    best, out = float("inf"), None
    for _ in range(repeat):
        if device.type == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter(); out = fn()
        if device.type == "cuda": torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="objret-tiny-vit")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--images", type=int, default=512, help="images extracted and clustered")
    ap.add_argument("--sklearn-images", type=int, default=64, help="images clustered by scikit-learn (per-image loop)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--k", type=int, default=10, help="clusters per image (k-means and agglomerative)")
    ap.add_argument("--index-images", type=int, default=5000)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()

    from sklearn.cluster import AgglomerativeClustering, KMeans
    from objret.backbones import create_clip
    from objret.cluster import agglomerative, cluster_representatives, kmeans
    from objret.core import get_device
    from objret.dense import global_dense
    from objret.index import VectorIndex

    dev = get_device(a.device)
    torch.manual_seed(0)
    clip = create_clip(a.model, device=str(dev))
    vis = clip.model.visual.eval()
    x = torch.randn(a.images, 3, a.resolution, a.resolution)
    print(f"device {dev}; {a.model} (random weights) at {a.resolution} px; {a.images} images, batch {a.batch_size}")

    # 1. extraction: the trick's cost at the native size, then the larger input
    def run(f, imgs):
        with torch.no_grad(): return [f(b.to(dev)) for b in imgs.split(a.batch_size)]
    xn = F.interpolate(x, size=clip.image_size, mode="bilinear")
    t_glob, _ = timed(lambda: run(clip.model.encode_image, xn), dev, 2)
    t_nat, _ = timed(lambda: run(lambda b: global_dense(vis, b), xn), dev, 2)
    t_dense, outs = timed(lambda: run(lambda b: global_dense(vis, b), x), dev, 2)
    P = outs[0][1].shape[1]
    print(f"\n1. extraction of {a.images} images")
    print(f"   native {clip.image_size} px: global-only (encode_image) {t_glob:.2f} s, global + dense {t_nat:.2f} s "
          f"→ dense costs {t_nat / t_glob:.2f}× a global-only forward")
    print(f"   {a.resolution} px ({P} patches): global + dense {t_dense:.2f} s → {t_dense / t_glob:.2f}× the native global-only forward")
    if dev.type == "cuda": print(f"   {a.images / t_dense:.0f} images/s of dense extraction at {a.resolution} px")
    dense = F.normalize(torch.cat([d for _, d, _ in outs]).float(), dim=-1).cpu()

    # 2. clustering
    n_sk = min(a.sklearn_images, len(dense))
    t_km, _ = timed(lambda: kmeans(dense.to(dev), a.k), dev, 2)
    t_ag, _ = timed(lambda: agglomerative(dense.to(dev), n_clusters=a.k), dev, 1)
    t_skm, _ = timed(lambda: [KMeans(a.k, n_init=1, random_state=0).fit(d.numpy()) for d in dense[:n_sk]], dev, 1)
    t_sag, _ = timed(lambda: [AgglomerativeClustering(a.k, metric="cosine", linkage="average").fit(d.numpy()) for d in dense[:n_sk]], dev, 1)
    per = lambda t, m: t / m * 1e3
    print(f"\n2. clustering {P} patches into {a.k} (ms per image; scikit-learn on {n_sk} images, objret on {len(dense)} at once)")
    print(f"   k-means:       objret {per(t_km, len(dense)):.2f}  scikit-learn {per(t_skm, n_sk):.2f}  → {per(t_skm, n_sk) / per(t_km, len(dense)):.1f}× faster")
    print(f"   agglomerative: objret {per(t_ag, len(dense)):.2f}  scikit-learn {per(t_sag, n_sk):.2f}  → {per(t_sag, n_sk) / per(t_ag, len(dense)):.1f}× faster")
    if dev.type == "cuda": print(f"   {len(dense) / t_km:.0f} images/s k-means, {len(dense) / t_ag:.0f} images/s agglomerative")

    # 3. search: tile the extracted features to --index-images images (with noise: no exact duplicates)
    g = torch.Generator().manual_seed(1)
    reps = -(-a.index_images // len(dense))
    D = F.normalize(dense.repeat(reps, 1, 1)[:a.index_images] + 0.05 * torch.randn(a.index_images, P, dense.shape[2], generator=g), dim=-1)
    G = F.normalize(D.mean(1), dim=-1)
    V, C = cluster_representatives(D, "kmeans", k=a.k, device=str(dev), batch_size=512)
    Q = F.normalize(torch.randn(a.queries, D.shape[2], generator=g), dim=-1)
    rows = []
    for name, vec, cnt in (("global", G, None), (f"Cluster-CLIP k={a.k}", V, C), (f"Dense-CLIP {P}", D.reshape(-1, D.shape[2]), torch.full((len(D),), P))):
        idx = VectorIndex(D.shape[2], device=str(dev)); idx.add(vec, cnt)
        idx.search(Q[:8], 50)
        t, _ = timed(lambda: idx.search(Q, 50), dev, 3)
        rows.append((name, idx.n_vectors / len(idx), idx.nbytes() / len(idx), t / len(Q) * 1e3))
    print(f"\n3. search, {a.index_images} images, {a.queries} queries, top 50 (exact multi-vector index on {dev})")
    print(f"   {'':<18}{'vectors/image':>14}{'bytes/image':>13}{'ms/query':>10}{'× global time':>15}{'× global bytes':>16}")
    for name, vpi, bpi, ms in rows:
        print(f"   {name:<18}{vpi:>14.1f}{bpi:>13.0f}{ms:>10.3f}{ms / rows[0][3]:>15.1f}{bpi / rows[0][2]:>16.1f}")
    print(f"   Dense-CLIP / Cluster-CLIP: {rows[2][3] / rows[1][3]:.1f}× the search time, {rows[2][2] / rows[1][2]:.1f}× the bytes")


if __name__ == "__main__":
    main()
