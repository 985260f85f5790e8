"""CLIP image embedding time per image against the batch size of each forward pass, measured in one run.

    python bench/embed_batch.py                          # the tiny CLIP at 64 px, 4,096 random images
    python bench/embed_batch.py --model ViT-B-32 --images 512 --sizes 16,64,256

Why: `objret.regions.embed_images_and_regions` sends crops through the model `batch_size` at a time. On a small CPU a
tiny ViT runs faster per image in batches of about 128 than of 512 (the activations stay in cache); on a GPU larger
batches win. Prints milliseconds per image at each size and each size's speed relative to the largest.
"""
import argparse, time

import torch

from objret.backbones import create_clip
from objret.train import TinyClipConfig, tiny_clip


def ms_per_image(model, X, bs, repeats=2):
    "Best of `repeats` passes over X in batches of `bs`, in ms per image."
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for x in X.split(bs): model.encode_image(x)
        if X.is_cuda: torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 1000 * best / len(X)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="objret-tiny-vit", help="open_clip model name; the tiny one uses objret's shipped weights")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--sizes", default="32,64,128,256,512,1024")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    clip = tiny_clip(TinyClipConfig(model=a.model), device=a.device) if a.model.startswith("objret-") else create_clip(a.model, device=a.device)
    X = torch.randn(a.images, 3, clip.image_size, clip.image_size, device=clip.device)
    sizes = [int(s) for s in a.sizes.split(",")]
    with torch.inference_mode():
        clip.model.encode_image(X[:sizes[0]])                                    # warm-up
        ms = {bs: ms_per_image(clip.model, X, bs) for bs in sizes}
    print(f"{a.model} at {clip.image_size} px on {clip.device}, {a.images} images, threads {torch.get_num_threads()}")
    for bs, t in ms.items(): print(f"batch {bs:5d}: {t:.3f} ms/image, {ms[sizes[-1]] / t:.2f}x the speed of batch {sizes[-1]}")


if __name__ == "__main__":
    main()
