"""`objret serve` under load: 8 concurrent clients on 127.0.0.1 against the same searches in-process. One run:

    python bench/serve_load.py                     # 2,000 images (Cluster-CLIP), 400 requests, ≈ 3 min on a 2-core CPU
    python bench/serve_load.py --requests 100      # quicker
    python bench/serve_load.py --threads 1         # torch on one thread in the server and in-process

A Cluster-CLIP collection of N synthetic scenes is built, then served by `objret serve` (a subprocess, on 127.0.0.1 at
a free port). The requests: three in four are one text query (POST /api/search), one in four a region of a hit
(POST /api/search/hit: the image read from the collection, cropped, encoded, searched). They go one at a time in-process
(`Service.texts` / `Service.hit_region` on a `Service` of the same collection: the search without HTTP) and over HTTP
from 8 client threads at once, interleaved in 4 rounds (a quarter of the requests in-process, the same quarter over
HTTP, and so on), after a warm-up of each. Bounded: each request times out after 60 s and the whole load after
`--max-seconds`. Printed: p50/p95 latency and queries/s of each, and the failed requests (the script fails on any).
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sync import COLORS, write_folder   # the same synthetic scenes as the sync bench

SHAPES = ("circle", "square", "triangle", "star")
ROUNDS = 4   # the in-process and the HTTP passes alternate, a quarter of the requests each time


def requests_for(n, items, seed=0):
    "n requests: three in four a text query, one in four a region of an item."
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i % 4 == 3:
            x, y = (int(v) for v in rng.integers(0, 64, 2))
            out.append(("hit", {"collection": "c", "item": int(rng.integers(items)), "box": [x, y, x + 48, y + 48], "k": 10}))
        else: out.append(("text", {"queries": [f"a photo of a {rng.choice(COLORS)} {rng.choice(SHAPES)}"], "k": 10}))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, kind, body):
    "One request; its latency in seconds (raises on any failure)."
    path = "/api/search" if kind == "text" else "/api/search/hit"
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        got = json.loads(r.read())
    assert len(got["c"]) == (1 if kind == "text" else 10) or "error" in got["c"], got
    return time.perf_counter() - t0


def stats(lat, wall):
    lat = np.sort(np.asarray(lat)) * 1000
    return f"p50 {np.percentile(lat, 50):6.1f} ms, p95 {np.percentile(lat, 95):6.1f} ms, {len(lat) / wall:6.1f} queries/s"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="images in the collection")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of both the server and the in-process searches "
                    "(default: torch's; on a loaded CPU, 1 avoids OpenMP's waits for descheduled threads)")
    ap.add_argument("--max-seconds", type=float, default=600, help="bound on the HTTP load")
    a = ap.parse_args()
    env = {**os.environ, "OBJRET_PROGRESS": "0", **({"OMP_NUM_THREADS": str(a.threads)} if a.threads else {})}
    os.environ.update(OBJRET_PROGRESS="0")
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    from objret.collection import build_collection
    from objret.serve import Service
    tmp = Path(tempfile.mkdtemp(prefix="objret-bench-serve-"))
    server = None
    try:
        write_folder(tmp/"photos", a.n)
        build_collection(tmp/"photos", tmp/"c", "cluster-clip", device="cpu")
        reqs = requests_for(a.requests, a.n)
        svc = Service([tmp/"c"], device="cpu")                                    # in-process: the same searches, no HTTP
        def local(kind, body):
            t0 = time.perf_counter()
            if kind == "text": svc.texts(body["queries"], body["k"])
            else: svc.hit_region("c", body["item"], body["box"], body["k"])
            return time.perf_counter() - t0
        port = free_port()
        server = subprocess.Popen([str(Path(sys.executable).parent/"objret"), "serve", str(tmp/"c"), "--port", str(port), "--device", "cpu",
                                   *(["--threads", str(a.threads)] if a.threads else [])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        url, t0 = f"http://127.0.0.1:{port}", time.time()
        while True:
            try: urllib.request.urlopen(url + "/api/collections", timeout=2); break
            except OSError:
                if server.poll() is not None or time.time() - t0 > 180: raise RuntimeError(f"objret serve did not start: {server.stderr.read()[-2000:]}")
                time.sleep(0.3)
        for r in reqs[:8]: local(*r); post(url, *r)                               # warm-up, both
        failed, lat, lat_local, wall, wall_local = [], [], [], 0.0, 0.0
        def one(r):
            if time.perf_counter() - start > a.max_seconds: return None
            try: return post(url, *r)
            except Exception as e: failed.append(f"{r[0]}: {e!r}"[:300]); return None
        start = time.perf_counter()
        for part in np.array_split(np.arange(len(reqs)), ROUNDS):                   # interleaved: in-process, HTTP, in-process, …
            t0 = time.perf_counter(); lat_local += [local(*reqs[i]) for i in part]; wall_local += time.perf_counter() - t0
            t0 = time.perf_counter()
            with ThreadPoolExecutor(a.clients) as ex: lat += [x for x in ex.map(one, [reqs[i] for i in part]) if x is not None]
            wall += time.perf_counter() - t0
        print(f"serve under load: cluster-clip, {a.n} images, {len(reqs)} requests (3/4 one text query, 1/4 a region of a hit), "
              f"CPU, torch {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at the end:")
        print(f"  in-process, one at a time:        {stats(lat_local, wall_local)}")
        print(f"  objret serve, {a.clients} HTTP clients:     {stats(lat, wall)}  → {wall_local / wall:.2f}× the in-process queries/s")
        print(f"  answered {len(lat)} of {len(reqs)}, failed {len(failed)}" + (f": {failed[:3]}" if failed else ""))
        assert not failed and len(lat) == len(reqs), "requests failed or the load ran out of time"
    finally:
        if server is not None: server.terminate(); server.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__": main()
