"""Train objret's tiny CNN (the regional-attention backbone of the synthetic world) with the default recipe.

    python bench/tiny_cnn.py                  # into a fresh temporary OBJRET_HOME (world + training + evaluation)
    python bench/tiny_cnn.py --keep           # into the real cache, so that tiny_cnn() finds the weights later
    python bench/tiny_cnn.py --ship           # and copy the run into objret/weights/ (what objret ships)

Prints the wall time of training and the multi-label classification mAP on the 1,000 synthetic test scenes.
"""
import argparse, json, os, tempfile, time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="train into the real OBJRET_HOME cache")
    ap.add_argument("--ship", action="store_true", help="copy the finished run into objret/weights/ (fp32: 1.8 MB)")
    ap.add_argument("--config", default="{}", help='JSON overrides of TinyCnnConfig, e.g. \'{"steps": 300}\'')
    a = ap.parse_args()
    if not a.keep: os.environ["OBJRET_HOME"] = tempfile.mkdtemp(prefix="objret-bench-")
    from objret.backbones import cnn_backbone
    from objret.synth import object_world
    from objret.train import TinyCnnConfig, classifier_map, load_split_tensors, ship_run, train_tiny_cnn
    cfg = TinyCnnConfig(**json.loads(a.config))
    world = object_world(cfg.n_train, cfg.n_eval, cfg.n_eval, seed=cfg.world_seed, progress=False)
    t0 = time.perf_counter(); out = train_tiny_cnn(cfg); t_train = time.perf_counter() - t0
    m = classifier_map(cnn_backbone(cfg.model, out/"model.pt"), load_split_tensors(world, "test", cfg.image_size))
    print(f"config {cfg.key()}: {a.config}")
    print(f"training: {cfg.steps} steps in {t_train:.0f} s ({t_train / 60:.1f} min); test multi-label mAP {m['mAP']:.1f} %")
    print(f"weights: {out/'model.pt'}")
    if a.ship: print(f"shipped: {ship_run(out, f'tiny-cnn-{cfg.key()}', half=False)}")


if __name__ == "__main__":
    main()
