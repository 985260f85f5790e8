"""Train objret's tiny detector (the object-embedding study's Faster R-CNN on the synthetic world) with the default recipe.

    python bench/tiny_detector.py             # into a fresh temporary OBJRET_HOME (world + training + evaluation)
    python bench/tiny_detector.py --keep      # into the real cache, so that tiny_detector() finds the weights later
    python bench/tiny_detector.py --ship      # and copy the run into objret/weights/ (what objret ships)

Its trunk starts from the tiny CNN run named in the config (the one objret ships, or the cache's). Prints the wall time
of training and the class-agnostic recall at IoU 0.5 of the detections scoring ≥ 0.3 on the 1,000 synthetic test scenes.
"""
import argparse, json, os, tempfile, time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="train into the real OBJRET_HOME cache")
    ap.add_argument("--ship", action="store_true", help="copy the finished run into objret/weights/ (fp16)")
    ap.add_argument("--config", default="{}", help='JSON overrides of TinyDetectorConfig, e.g. \'{"steps": 300}\'')
    a = ap.parse_args()
    if not a.keep: os.environ["OBJRET_HOME"] = tempfile.mkdtemp(prefix="objret-bench-")
    from objret.synth import object_world
    from objret.train import TinyDetectorConfig, detection_recall, load_split_tensors, ship_run, tiny_detector, train_tiny_detector
    cfg = TinyDetectorConfig(**json.loads(a.config))
    world = object_world(cfg.n_train, cfg.n_eval, cfg.n_eval, seed=cfg.world_seed, progress=False)
    t0 = time.perf_counter(); out = train_tiny_detector(cfg); t_train = time.perf_counter() - t0
    r = detection_recall(tiny_detector(cfg), load_split_tensors(world, "test", cfg.image_size))
    print(f"config {cfg.key()}: {a.config}")
    print(f"training: {cfg.steps} steps in {t_train:.0f} s ({t_train / 60:.1f} min); test recall@IoU0.5 {r['recall']:.1f} %, "
          f"{r['detections_per_image']:.2f} detections per image (score ≥ 0.3) for {r['objects_per_image']:.2f} objects")
    print(f"weights: {out/'model.pt'}")
    if a.ship: print(f"shipped: {ship_run(out, f'tiny-detector-{cfg.key()}', half=True)}")


if __name__ == "__main__":
    main()
