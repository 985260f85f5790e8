"""Train objret's tiny OPEN decoder (for collections of one's own images: the tiny CLIP's embeddings fused with the
tiny detector's regions) with the default recipe.

    python bench/tiny_open.py             # into a fresh temporary OBJRET_HOME (world + features + training + evaluation)
    python bench/tiny_open.py --keep      # into the real cache, so that tiny_open() finds the weights later
    python bench/tiny_open.py --ship      # and copy the run into objret/weights/ (what objret ships)

Prints the wall time and text→image / image→text recall of the decoder against the linear probe on the 1,000
synthetic test scenes, both with the tiny detector's regions.
"""
import argparse, json, os, tempfile, time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="train into the real OBJRET_HOME cache")
    ap.add_argument("--ship", action="store_true", help="copy the finished run into objret/weights/ (fp16)")
    ap.add_argument("--config", default="{}", help='JSON overrides of TinyOpenConfig, e.g. \'{"epochs": 5}\'')
    a = ap.parse_args()
    if not a.keep: os.environ["OBJRET_HOME"] = tempfile.mkdtemp(prefix="objret-bench-")
    from objret.backbones import create_clip
    from objret.data import load_captions
    from objret.open import TinyOpenConfig, open_features, open_recall, tiny_open, tiny_open_regions, train_tiny_open
    from objret.synth import WorldConfig, object_world
    from objret.train import TinyClipConfig, ship_run, trained_dir
    cfg = TinyOpenConfig(**json.loads(a.config))
    t0 = time.perf_counter(); out = train_tiny_open(cfg); t_train = time.perf_counter() - t0
    world = object_world(cfg.n_train, cfg.n_eval, cfg.n_eval, seed=cfg.world_seed, cfg=WorldConfig(markings=cfg.markings), progress=False)
    caps = load_captions(world/"captions.json", world/"images", "test")
    clip = create_clip(TinyClipConfig().model, pretrained=trained_dir(cfg.clip)/"model.pt")
    feats = open_features(clip, caps, tiny_open_regions(caps.root, caps.files, cfg=cfg), max_regions=cfg.max_regions)
    r_open, r_zero = open_recall(tiny_open(cfg), feats), open_recall(None, feats)
    print(f"config {cfg.key()}: {a.config}")
    print(f"training (features of {cfg.n_train} scenes included): {t_train:.0f} s ({t_train / 60:.1f} min)")
    print("test t2i R@1/5/10 — zero-shot {:.1f} / {:.1f} / {:.1f}; OPEN (tiny detector regions) {:.1f} / {:.1f} / {:.1f}".format(
          *(r_zero[f"t2i_R@{k}"] for k in (1, 5, 10)), *(r_open[f"t2i_R@{k}"] for k in (1, 5, 10))))
    print(f"weights: {out/'model.pt'}")
    if a.ship: print(f"shipped: {ship_run(out, f'tiny-open-{cfg.key()}', half=True)}")


if __name__ == "__main__":
    main()
