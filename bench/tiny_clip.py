"""Train objret's tiny CLIP from scratch with the default recipe and print what the issue's bar asks for.

    python bench/tiny_clip.py                 # into a fresh temporary OBJRET_HOME (world + training + evaluation)
    python bench/tiny_clip.py --keep          # into the real cache, so that tiny_clip() finds the weights later
    python bench/tiny_clip.py --ship          # and copy the run into objret/weights/ (what objret ships, fp16)

Prints the wall time of world generation and of training, text↔image Recall@K on the 1,000 synthetic test images
(5 captions each), the pointing-game hit rate of the dense features, with the chance level (mean box area), and
how well close-up crops of the test objects tell their marking (plain, striped, checked; chance 33 %).
"""
import argparse, json, os, tempfile, time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="train into the real OBJRET_HOME cache")
    ap.add_argument("--ship", action="store_true", help="copy the finished run into objret/weights/ (fp16)")
    ap.add_argument("--config", default="{}", help='JSON overrides of TinyClipConfig, e.g. \'{"steps": 600}\'')
    a = ap.parse_args()
    if not a.keep: os.environ["OBJRET_HOME"] = tempfile.mkdtemp(prefix="objret-bench-")
    from objret.backbones import create_clip
    from objret.train import (TinyClipConfig, caption_recall, caption_world, embed_split, load_split_tensors, marking_accuracy,
                              object_crops, pointing_game, ship_run, train_tiny_clip)
    cfg = TinyClipConfig(**json.loads(a.config))
    t0 = time.perf_counter(); world = caption_world(cfg, progress=False)
    t_world = time.perf_counter() - t0
    t0 = time.perf_counter(); out = train_tiny_clip(cfg); t_train = time.perf_counter() - t0
    clip = create_clip(cfg.model, pretrained=out/"model.pt")
    te = load_split_tensors(world, "test", clip.image_size)
    g, d = embed_split(clip, te)
    r, p, m = caption_recall(clip, te, g), pointing_game(clip, te, d), marking_accuracy(clip, object_crops(world, "test", clip.image_size))
    print(f"config {cfg.key()}: {json.dumps(a.config and json.loads(a.config))}")
    print(f"world: {cfg.n_train + 2 * cfg.n_eval} images in {t_world:.0f} s; training: {cfg.steps} steps in {t_train:.0f} s ({t_train / 60:.1f} min)")
    print("text→image R@1/5/10: {t2i_R@1:.1f} / {t2i_R@5:.1f} / {t2i_R@10:.1f}   image→text R@1/5/10: {i2t_R@1:.1f} / {i2t_R@5:.1f} / {i2t_R@10:.1f}".format(**r))
    print("pointing game: {pointing:.1f} % (small {pointing_small:.1f}, medium {pointing_medium:.1f}, large {pointing_large:.1f}; chance {chance:.1f})".format(**p))
    print("markings of test-object close-ups: " + ", ".join(f"{k} {v:.1f} %" for k, v in m.items()) + " (chance 33.3 %)")
    print(f"weights: {out/'model.pt'}")
    if a.ship: print(f"shipped: {ship_run(out, f'tiny-clip-{cfg.key()}')}")


if __name__ == "__main__":
    main()
