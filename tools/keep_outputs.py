"""Execute chapter notebooks and keep their outputs small enough to commit (`make outputs`).

JupyterLab and the docs site show a chapter's outputs (a table, a figure, a printed example) only if the notebook
holds them. This runs each notebook with nbdev's `test_nb` (same skipped flags), drops stderr (progress bars,
expected warnings), shrinks every image (at most 640 px wide; a 128-colour PNG, or a JPEG for image grids where that
is under half the bytes), drops the largest images while the outputs exceed the budget, and writes the notebook
back; `nbdev-clean` then strips execution counts and metadata. The reproduce notebooks are not chapters: papermill runs
them and their outputs go to `results/`.

    python tools/keep_outputs.py                     # every chapter notebook and the tutorial
    python tools/keep_outputs.py nbs/02_index.ipynb  # some of them
"""
import argparse, base64, io, json, os, sys, time
os.environ.setdefault("OBJRET_PROGRESS", "0")   # progress bars are no output worth keeping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 200_000  # bytes of outputs per notebook


def chapters() -> list:
    "The notebooks whose outputs are kept: the numbered chapters, the tutorials and the index."
    nbs = ROOT/"nbs"
    return sorted(nbs.glob("[0-9][0-9]_*.ipynb")) + sorted(nbs.glob("tutorial_*.ipynb")) + [nbs/"index.ipynb"]


def shrink_image(b64:str, width:int=640, colours:int=128, quality:int=80) -> tuple[str, str]:
    "A PNG (base64) at most `width` px wide: as a `colours` palette PNG (plots), or as a JPEG where that is smaller (image grids)."
    from PIL import Image
    im = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
    if im.width > width: im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    png, jpg = io.BytesIO(), io.BytesIO()
    im.quantize(colours, method=Image.Quantize.MEDIANCUT).save(png, "PNG", optimize=True)
    im.save(jpg, "JPEG", quality=quality, optimize=True)
    png, jpg = (base64.b64encode(f.getvalue()).decode() for f in (png, jpg))
    if 2 * len(jpg) < len(png): return jpg, "image/jpeg"
    return min(png, b64, key=len), "image/png"


def out_bytes(nb) -> int: return sum(len(json.dumps(c.get("outputs", []))) for c in nb.cells)


def fit(nb, budget:int=BUDGET) -> list:
    "Drop stderr (progress bars, expected warnings), shrink every image, then drop the largest images until the outputs fit `budget`; returns what was dropped."
    imgs = []
    for c in nb.cells:
        if c.cell_type == "code": c.outputs = [o for o in c.outputs if not (o.output_type == "stream" and o.name == "stderr")]
        for o in c.get("outputs", []):
            d = o.get("data", {})
            if "image/png" in d:
                img, mime = shrink_image(d.pop("image/png")); d[mime] = img; imgs.append((c, o, mime))
    dropped = []
    for c, o, mime in sorted(imgs, key=lambda com: -len(com[1]["data"][com[2]])):
        if out_bytes(nb) <= budget: break
        c.outputs.remove(o); dropped.append(f'{c.get("id")} ({len(o["data"][mime]) // 1000} kB)')
    return dropped


def run(path:Path, budget:int=BUDGET):
    "Execute `path` with nbdev's own test runner (same skipped flags), writing its outputs; then fit them to the budget."
    from nbdev.config import get_config
    from nbdev.test import test_nb
    import nbformat
    flags = get_config().tst_flags; flags = flags.split() if isinstance(flags, str) else list(flags)
    ok, secs = test_nb(path, skip_flags=flags, save=True)
    if not ok: raise SystemExit(f"{path.name} failed (traceback above); its outputs were not written.")
    nb = nbformat.read(path, as_version=4)
    dropped = fit(nb, budget)
    nbformat.write(nb, path)
    print(f"{path.name}: outputs {out_bytes(nb) / 1000:.0f} kB ({len(dropped)} images dropped{': ' + ', '.join(dropped) if dropped else ''}) in {secs:.0f} s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--budget", type=int, default=BUDGET, help="bytes of outputs per notebook")
    a = ap.parse_args()
    for p in a.notebooks or chapters(): run(p.resolve(), a.budget)


if __name__ == "__main__":
    sys.exit(main())
