"""Choose OPEN's training recipe on the synthetic world's *validation* split (never the test split).

    python bench/open_val_sweep.py        # ≈4 min on a 2-core CPU once the tiny CLIP is cached

Trains PreTrain-linear-prob and OPEN (ground-truth regions, ≤10 per image) on the 10,000 training scenes for
10 or 30 epochs at lr 1e-3 or 3e-3 and prints image↔text Recall@K on the 1,000 validation scenes. objret's default
(10 epochs, lr 3e-3, the same recipe for both models) is the setting with OPEN's best validation text→image R@1.
"""
import itertools

import torch

from objret.open import OpenModel, load_caption_split, open_features, open_recall, regions_for, train_open
from objret.regions import filter_regions
from objret.train import tiny_clip


def features(clip, split):
    caps, root = load_caption_split("synthetic", None, split)
    return open_features(clip, caps, filter_regions(regions_for("gt", caps, "synthetic", root, split)), max_regions=10)


def main():
    clip = tiny_clip()
    tr, va = features(clip, "train"), features(clip, "val")
    fmt = lambda r: " ".join(f"{k} {v:5.1f}" for k, v in r.items() if "R@" in k)
    print(f"{'zero-shot CLIP':>34}  {fmt(open_recall(None, va))}")
    for epochs, lr in itertools.product((10, 30), (1e-3, 3e-3)):
        for regions in (False, True):
            torch.manual_seed(0)
            m = OpenModel(clip.embed_dim, regions=regions)
            train_open(m, tr, epochs=epochs, batch_size=256, lr=lr)
            print(f"{'OPEN' if regions else 'PreTrain-linear-prob':>20} {epochs:>3} ep lr {lr:.0e}  {fmt(open_recall(m, va))}", flush=True)


if __name__ == "__main__":
    main()
