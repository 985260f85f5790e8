"""objret's CUDA paths on the first GPU: one script, one table, well under 8 minutes.

    python bench/gpu_check.py                      # on a CUDA machine; elsewhere it says "no CUDA device" and exits 0
    python bench/gpu_check.py --device cpu --quick # the same steps on the CPU at small shapes (how CI tests this script)

Steps (each a row: what, where, the measure, the check against the CPU, ok/FAIL):
1. the notebook cells marked `#| gpu` (`nbdev-test --flags gpu` on the notebooks that have them);
2. Dense-CLIP extraction (`vit_global_dense`) on ViT-B-32 shapes (random weights: speed does not depend on what was
   learned), images/s, and its global embedding against the CPU's on the same images;
3. Cluster-CLIP k-means (10 per image) on those dense embeddings, images/s, and the share of images clustered as on
   the CPU;
4. faiss exact (Flat) and IVF search on the device against faiss on the CPU: identical top-10 ids;
5. a collection build with the device (`build_collection(..., device=…)`) against a CPU build of the same images;
6. the same build with the Ray engine, one actor holding one GPU (`RayEngine(actors=1, gpus_per_actor=1)`).
A step that fails prints FAIL with its error and the others still run; the exit status is 1 if any failed.
"""
import argparse, os, shutil, subprocess, sys, tempfile, time, traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()


def gpu_cells(dev, quick, state):
    "nbdev-test --flags gpu on the notebooks holding `#| gpu` cells."
    nbs = sorted(str(p) for p in (ROOT/"nbs").glob("*.ipynb") if "#| gpu" in p.read_text())
    if dev.type != "cuda": return "skipped on the CPU", "", True
    bin_ = Path(sys.executable).parent/"nbdev-test"
    t0 = time.perf_counter()
    bad = [nb for nb in nbs if subprocess.run([str(bin_), "--flags", "gpu", nb], cwd=ROOT, capture_output=True).returncode]
    return f"{len(nbs) - len(bad)} of {len(nbs)} notebooks pass ({time.perf_counter() - t0:.0f} s)", f"failed: {bad}" if bad else "", not bad


def dense(dev, quick, state):
    from objret.backbones import create_clip, vit_global_dense
    name, res, n = ("objret-tiny-vit", 128, 32) if quick else ("ViT-B-32", 448, 256)
    clip = create_clip(name, None, device=str(dev)).model.eval()
    x = torch.randn(n, 3, res, res, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        vit_global_dense(clip.visual, x[:8].to(dev)); sync(dev)
        t0 = time.perf_counter()
        outs = [vit_global_dense(clip.visual, x[s:s + 32].to(dev)) for s in range(0, n, 32)]; sync(dev)
        dt = time.perf_counter() - t0
        g = torch.cat([o[0] for o in outs]).float().cpu()
        d = torch.nn.functional.normalize(torch.cat([o[1] for o in outs]).float(), dim=-1)
        g_cpu = vit_global_dense(clip.visual.cpu().float(), x[:8])[0]
    state["dense"] = d
    err = (torch.nn.functional.normalize(g[:8], dim=-1) - torch.nn.functional.normalize(g_cpu, dim=-1)).abs().max().item()
    return f"{name} at {res} px, {tuple(d.shape[1:])} dense: {n / dt:.0f} images/s", f"global vs CPU: max |Δ| {err:.1e}", err < 1e-2


def cluster(dev, quick, state):
    from objret.cluster import kmeans
    d = state["dense"]
    kmeans(d[:8], 10); sync(dev)
    t0 = time.perf_counter(); lab = kmeans(d, 10); sync(dev); dt = time.perf_counter() - t0
    lab_cpu = kmeans(d.cpu(), 10)
    same = (lab.cpu() == lab_cpu).all(1).float().mean().item()
    return f"k-means 10, {len(d)} images: {len(d) / dt:.0f} images/s", f"labels as on the CPU: {100 * same:.0f} % of images", same >= 0.9


def faiss_search(dev, quick, state):
    from objret.index import VectorIndex
    n, dim = (5_000, 64) if quick else (200_000, 512)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, dim), dtype=np.float32); q = rng.standard_normal((256, dim), dtype=np.float32)
    out, ok = [], True
    for factory in ("Flat", "IVF256,Flat"):
        ids, secs = {}, {}
        for where in ("cpu", str(dev)):
            idx = VectorIndex(dim, factory, device=where, nprobe=16)
            if factory != "Flat": idx.train(x[:50_000])
            idx.add(x)
            idx.search(q[:8], 10)
            t0 = time.perf_counter(); _, i = idx.search(q, 10); secs[where] = time.perf_counter() - t0
            ids[where] = i.numpy()
        same = (ids["cpu"] == ids[str(dev)]).all(1).mean()
        ok &= same >= (1.0 if factory == "Flat" else 0.95)
        out.append(f"{factory}: {len(q) / secs[str(dev)]:.0f} q/s ({secs['cpu'] / secs[str(dev)]:.1f}× CPU), same top-10 {100 * same:.0f} %")
    return f"{n} × {dim}", "; ".join(out), ok


def scenes(tmp, n):
    from objret.synth import object_world
    w = object_world(8, 8, n, seed=5, progress=False, root=Path(tmp)/"w")
    return w/"images"


def build(dev, quick, state):
    from objret.collection import build_collection, load_collection
    folder = scenes(state["tmp"], 64 if quick else 1000)
    n = len(list(folder.glob("*.png")))
    t0 = time.perf_counter()
    s = build_collection(folder, Path(state["tmp"])/"dev", "cluster-clip", device=str(dev), index=False); dt = time.perf_counter() - t0
    build_collection(folder, Path(state["tmp"])/"cpu", "cluster-clip", device="cpu", index=False)
    a, b = (load_collection(Path(state["tmp"])/w, reindex=True) for w in ("dev", "cpu"))
    ka, kb = (c.search("a photo of a red circle", k=10).key.tolist() for c in (a, b))
    state["folder"] = folder
    return f"cluster-clip, {n} scenes: {s['embedded']} embedded, {n / dt:.0f} images/s (model load included)", \
        f"top-10 of a text query as the CPU build's: {ka == kb}", s["embedded"] == n and ka == kb


def ray_build(dev, quick, state):
    import ray
    from objret.collection import build_collection
    from objret.engines import RayEngine
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=os.cpu_count(), log_to_driver=False,
             num_gpus=1 if dev.type == "cuda" else 0)
    try:
        t0 = time.perf_counter()
        s = build_collection(state["folder"], Path(state["tmp"])/"ray", "cluster-clip", device=str(dev), index=False,
                             engine=RayEngine(actors=1, gpus_per_actor=1 if dev.type == "cuda" else 0))
        dt = time.perf_counter() - t0
    finally: ray.shutdown()
    return f"RayEngine, 1 actor{' with 1 GPU' if dev.type == 'cuda' else ''}: {s['embedded']} embedded in {dt:.0f} s", "", s["embedded"] > 0


STEPS = [("gpu cells", gpu_cells), ("Dense-CLIP", dense), ("Cluster-CLIP", cluster), ("faiss", faiss_search),
         ("build", build), ("Ray build", ray_build)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (or cuda:N); cpu to try the script's steps without a GPU")
    ap.add_argument("--quick", action="store_true", help="small shapes")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip, e.g. 'Ray build'")
    a = ap.parse_args(argv)
    os.environ.setdefault("OBJRET_PROGRESS", "0")
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check here (on a GPU machine this runs objret's CUDA paths; "
              "`--device cpu --quick` runs the same steps on the CPU)")
        return 0
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"gpu_check on {where}, torch {torch.__version__}, {'quick shapes' if a.quick else 'full shapes'}")
    state, rows, t_all = {"tmp": tempfile.mkdtemp(prefix="objret-gpu-check-")}, [], time.perf_counter()
    try:
        for name, step in STEPS:
            if name in {s.strip() for s in a.skip.split(",")}: continue
            t0 = time.perf_counter()
            try: what, check, ok = step(dev, a.quick, state)
            except Exception as e:
                traceback.print_exc()
                what, check, ok = f"{type(e).__name__}: {e}"[:200], "", False
            rows.append((name, what, check, "ok" if ok else "FAIL", time.perf_counter() - t0))
            print(f"  {name}: {'ok' if ok else 'FAIL'} ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally: shutil.rmtree(state["tmp"], ignore_errors=True)
    print(f"\n| step | measured on {where} | against the CPU | status | s |\n|---|---|---|---|---|")
    for name, what, check, ok, s in rows: print(f"| {name} | {what} | {check} | {ok} | {s:.0f} |")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return int(any(r[3] != "ok" for r in rows))


if __name__ == "__main__": sys.exit(main())
