"Every reproduce notebook runs under papermill with smoke parameters and writes the CSV it promises."
import json, re, subprocess
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]

OPEN_SMOKE = dict(pretrained=None, max_images=24, epochs=2, batch_size=8, time_sizes=[6, 12, 24])
OPEN_COLUMNS = ["source", "method", "i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "model", "regions", "test_images"]

# notebook -> (smoke parameters, CSV it writes relative to results_dir, columns the CSV must hold, rows)
SMOKE = {
    "reproduce_index.ipynb": (
        dict(n_items=300, n_concepts=2000, n_queries=100, factory="IVF16,Flat", nprobe=4, overfetch=[1, 4]),
        "index/index_retrieval.csv",
        ["dataset", "device", "method", "vectors_per_item", "bytes_per_item", "R@1", "R@5", "R@10", "small R@10", "queries_per_s"],
        4),
    "reproduce_dense_clip.ipynb": (
        dict(max_images=40, resolution=64, pretrained=None, n_clusters={"kmeans": 4, "agglo-threshold": 4, "agglo-count": 8}),
        "dense_clip/dense_clip_synthetic.csv",
        ["source", "row", "method", "reps_per_image", "mAP@50", "mAP", "mAP@50 s-m", "bytes_per_image", "query_ms",
         "model", "pretrained", "resolution", "images"],
        9 + 9),                                            # objret's 9 methods + the paper's 9 reference rows
    "reproduce_flickr.ipynb": (
        dict(OPEN_SMOKE), "open_flickr/open_flickr_recall.csv", OPEN_COLUMNS, 3 + 1),    # + the paper's probe row
    "reproduce_coco.ipynb": (
        dict(OPEN_SMOKE), "open_coco/open_coco_recall.csv", OPEN_COLUMNS, 3 + 2),        # + the paper's probe and OPEN rows
    "reproduce_composed.ipynb": (
        dict(weights=None, max_images=40, epochs=2, dim=32),
        "composed/composed_synthetic.csv",
        ["source", "method", "row", "R@1", "R@5", "R@10", "backbone", "k_regions", "test_queries", "gallery"],
        5 + 3),                                            # five methods + the paper's three rows
    "reproduce_oxford.ipynb": (
        dict(weights=None, max_images=40, n_landmarks=4, n_distractors=20, attention_steps=3, scale_levels=[1, 2, 3],
             clutter_levels={"noisy_background": [0.5, 1.0], "texture": [0.0, 0.3]}),
        "rmac/rmac_synthetic.csv",
        ["source", "variant", "QE", "mAP", "mAP_E", "mAP_M", "mAP_H", "s_per_image", "backbone", "database", "queries"],
        3 * 2 + 3),                                        # three variants ± QE + the paper's three rows
    "reproduce_object_embeddings.ipynb": (
        dict(max_images=40, n_landmarks=4, n_distractors=20, student_images=64, student_steps=20, whiten=True),
        "objemb/objemb_synthetic.csv",
        ["source", "representation", "similarity", "mAP", "mAP_E", "mAP_M", "mAP_H", "vectors_per_image", "s_per_image",
         "classifier", "detector", "database", "queries"],
        2 + 2 * 2),                                        # two global rows + two set similarities of objects and student
}


def test_every_reproduce_notebook_has_a_smoke_run():
    assert sorted(p.name for p in (ROOT/"nbs").glob("reproduce_*.ipynb")) == sorted(SMOKE)


def _index_claims(df, results):
    "Multi-vector exact search finds small objects better than mean pooling, at more vectors per item."
    df = df.set_index("method")
    single, multi = df.loc["single vector (mean of patches), exact"], df.loc["multi-vector max-sim, exact"]
    assert multi["small R@10"] > single["small R@10"]
    assert multi["vectors_per_item"] > 1 and single["vectors_per_item"] == 1

def _dense_clip_claims(df, results):
    "Storage: Dense-CLIP keeps a vector per patch, Cluster-CLIP a few, CLIP + X one more; every mAP is a percentage."
    o = df[df.source.str.startswith("objret")].set_index("method")
    assert o.loc["dense", "reps_per_image"] == 64 and o.loc["clip", "reps_per_image"] == 1
    assert o.loc["kmeans", "reps_per_image"] <= 4 < o.loc["agglo-count", "reps_per_image"] <= 8
    assert (o.loc["clip+kmeans", "reps_per_image"] - o.loc["kmeans", "reps_per_image"]) == 1 == o.loc["clip+dense", "reps_per_image"] - 64
    assert o.loc["dense", "bytes_per_image"] > 10 * o.loc["kmeans", "bytes_per_image"]
    m = o[["mAP@50", "mAP", "mAP@50 s-m"]]
    assert m.notna().all().all() and ((m >= 0) & (m <= 100)).all().all()
    sz = pd.read_csv(Path(results)/"dense_clip"/"dense_clip_sizes_synthetic.csv")   # Dense-CLIP's reason: the gain by object size
    assert sz["size"].tolist() == ["small", "medium", "large"] and sz[["CLIP", "Dense-CLIP"]].stack().between(0, 100).all()
    cl = pd.read_csv(Path(results)/"dense_clip"/"dense_clip_size_claims_synthetic.csv")
    assert len(cl) == 3 and cl.claim.str.contains("small objects").any() and cl.smoke.str.startswith("smoke run").all()

def _open_claims(df, results):
    "objret's three rows, in order, on the smoke collection; the reason ablation's four runs, each with its verdict."
    o = df[df.source.str.startswith("objret")]
    assert o.method.tolist() == ["zero-shot CLIP", "PreTrain-linear-prob", "OPEN"] and (o.test_images == 24).all()
    (ab_csv,) = Path(results).glob("open_*/open_*_ablation.csv")
    ab = pd.read_csv(ab_csv)
    assert ab.run.tolist() == ["objects' regions, 50 % of objects marked", "regions moved to random places", "regions moved off the objects",
                               "test scenes without markings (models as trained)"]
    assert ab["test markings"].tolist() == [0.5, 0.5, 0.5, 0.0] and ab.verdict.notna().all()
    on = ab["regions on objects %"]                                                     # the moved regions hold less of the objects
    assert on[0] == on[3] == 100 and on[0] > on[1] > on[2]
    assert ab_csv.with_suffix(".png").is_file()                                         # and its forest plot
    main = o.set_index("method")["t2i_R@1"]                                            # the first row is the main table's run
    assert abs(ab["OPEN t2i_R@1"][0] - main["OPEN"]) < 1e-4 and abs(ab["PreTrain-linear-prob t2i_R@1"][0] - main["PreTrain-linear-prob"]) < 1e-4

def _rmac_claims(df, results):
    "Three variants with and without QE on the smoke collection (2 queries); mAPs are percentages; times positive; the clutter ablation."
    o = df[df.source.str.startswith("objret")]
    assert o.variant.tolist() == ["R-MAC", "R-MAC", "+ regional attention", "+ regional attention", "+ context", "+ context"]
    assert o.QE.tolist() == [0, 5] * 3 and (o.queries == 2).all() and (o.s_per_image > 0).all()
    m = o[["mAP", "mAP_E", "mAP_M", "mAP_H"]]
    assert m.notna().all().all() and ((m >= 0) & (m <= 100)).all().all()
    tex = pd.read_csv(Path(results)/"rmac"/"rmac_clutter_synthetic.csv")           # one knob at a time, three variants per level
    assert list(zip(tex.knob, tex.level))[::3] == [("noisy_background", .5), ("noisy_background", 1.0), ("texture", 0.0), ("texture", .3)]
    main = o[o.QE == 0].set_index("variant").mAP                                      # the default world's levels reuse the main table
    for knob, level in (("noisy_background", .5), ("texture", 0.0)):
        got = tex[(tex.knob == knob) & (tex.level == level)].set_index("variant").mAP
        assert (got - main[got.index]).abs().max() < 1e-9, (knob, level)
    cl = pd.read_csv(Path(results)/"rmac"/"rmac_clutter_claims_synthetic.csv")
    assert len(cl) == 2 * 4 and cl.verdict.notna().all() and cl.smoke.str.startswith("smoke run").all()

def _composed_claims(df, results):
    "objret's five methods, in order, on the smoke world (20 test queries over 40 images)."
    o = df[df.source.str.startswith("objret")]
    assert o.method.tolist() == ["image", "text", "concat", "tirg", "lbf"]
    assert (o.test_queries == 20).all() and (o.gallery == 40).all() and (o.k_regions == 18).all()
    by = pd.read_csv(Path(results)/"composed"/"composed_objects_synthetic.csv")     # LBF's reason: R@1 by objects in the source
    assert by.queries.sum() <= 20 and by.objects.between(1, 4).all() and by["LBF (small, K = 18)"].between(0, 100).all()
    cl = pd.read_csv(Path(results)/"composed"/"composed_objects_claims_synthetic.csv")
    assert len(cl) == 2 * len(by) and cl.smoke.str.startswith("smoke run").all()

def _objemb_claims(df, results):
    "The four representations in order; sets hold more vectors than globals and cost more time; the findings CSV has three verdicts."
    assert df.representation.tolist() == ["classifier global", "detector global"] + ["object embeddings"] * 2 + ["student"] * 2
    assert df.similarity.tolist() == ["global", "global"] + ["best pair", "mean of best matches"] * 2
    assert (df.queries == 2).all() and (df.s_per_image > 0).all()
    g = df.set_index("representation")
    assert g.loc["classifier global", "vectors_per_image"] == 1 == g.loc["detector global", "vectors_per_image"]
    assert (g.loc[["object embeddings", "student"], "vectors_per_image"] >= 1).all()
    assert g.loc["object embeddings", "vectors_per_image"].tolist() == g.loc["student", "vectors_per_image"].tolist()  # the same boxes
    assert (g.loc["object embeddings", "s_per_image"] > g.loc["classifier global", "s_per_image"]).all()   # detector + classifier
    m = df[["mAP", "mAP_E", "mAP_M", "mAP_H"]]
    assert m.notna().all().all() and ((m >= 0) & (m <= 100)).all().all()
    a = pd.read_csv(Path(results)/"objemb"/"objemb_student_agreement_synthetic.csv").set_index("images")   # student vs teacher
    assert a.index.tolist() == ["student set (training)", "database (unseen)", "queries (unseen crops)"]
    assert a[["student-teacher, whole images", "student-teacher, boxes"]].stack().between(-1, 1).all()

CLAIMS = {"reproduce_index.ipynb": _index_claims, "reproduce_dense_clip.ipynb": _dense_clip_claims,
          "reproduce_flickr.ipynb": _open_claims, "reproduce_coco.ipynb": _open_claims, "reproduce_oxford.ipynb": _rmac_claims,
          "reproduce_composed.ipynb": _composed_claims, "reproduce_object_embeddings.ipynb": _objemb_claims}


def _check_output_notebook(path, results):
    "What a reader of the executed notebook sees: every figure written is shown, no stray reprs, no walls of stderr."
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    shown = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    written = list(Path(results).rglob("*.png"))
    assert written and shown >= len(written), f"{len(written)} figures written, {shown} shown inline"
    out = json.dumps([c.outputs for c in code])
    assert "PosixPath(" not in out and "np.float64(" not in out
    for c in code:
        err = "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream" and o.name == "stderr")
        assert err.count("\n") < 5, f"a cell wrote {err.count(chr(10))} stderr lines:\n{err[:1500]}"
    assert not any("skip_exec" in "".join(c.source) for c in nb.cells if c.cell_type == "markdown")   # front matter stays invisible
    from nbconvert import HTMLExporter
    body = HTMLExporter().from_notebook_node(nb)[0]                           # as nbconvert (and a reader of its HTML) shows it
    assert "skip_exec" not in body and "<name>" not in body      # an unescaped <name> would be an invisible HTML tag


@pytest.mark.parametrize("nb", sorted(SMOKE))
def test_reproduce_notebook_smoke(nb, tmp_path):
    params, csv, cols, n_rows = SMOKE[nb]
    pm.execute_notebook(str(ROOT/"nbs"/nb), str(tmp_path/nb), parameters={**params, "results_dir": str(tmp_path)},
                        kernel_name="python3", cwd=str(ROOT/"nbs"), progress_bar=False)
    _check_output_notebook(tmp_path/nb, tmp_path)
    df = pd.read_csv(tmp_path/csv)
    assert set(cols) <= set(df.columns), f"missing columns {set(cols) - set(df.columns)}"
    assert len(df) == n_rows
    ours = df[df.source.str.startswith("objret")] if "source" in df else df          # the paper's rows leave objret's columns empty
    recalls = ours[[c for c in cols if "R@" in c]]
    assert recalls.notna().all().all() and ((recalls >= 0) & (recalls <= 100)).all().all()
    if nb in CLAIMS: CLAIMS[nb](df, tmp_path)


def test_open_timing_csv(tmp_path):
    "reproduce_flickr's timing table: three collection sizes, query-dependent slower, the gap growing with size."
    pm.execute_notebook(str(ROOT/"nbs"/"reproduce_flickr.ipynb"), str(tmp_path/"out.ipynb"),
                        parameters={**OPEN_SMOKE, "max_images": 60, "time_sizes": [10, 30, 60], "results_dir": str(tmp_path)},
                        kernel_name="python3", cwd=str(ROOT/"nbs"), progress_bar=False)
    t = pd.read_csv(tmp_path/"open_flickr"/"open_flickr_times.csv")
    assert t.images.tolist() == [10, 30, 60] and (t.captions == 5 * t.images).all()
    assert t.ratio.iloc[-1] > t.ratio.iloc[0] and (t.query_dependent_s > t.query_agnostic_s).all()


def test_make_reproduce_runs_the_main_job(tmp_path):
    "The README's first command (the main job), with smoke parameters so that the suite stays fast."
    r = subprocess.run(["make", "-C", str(ROOT), "reproduce", f"RESULTS={tmp_path}",
                        "PARAMS=-p pretrained None -p max_images 24 -p epochs 1 -p batch_size 8 -y 'time_sizes: [6, 12, 24]'"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert list(tmp_path.rglob("*.csv")), "the main job wrote no CSV"


def _roxford_layout(tmp_path) -> tuple[Path, Path]:
    "A small revisited-Oxford layout (gnd_roxford5k.pkl + jpg/, easy/hard/junk only) from synthetic landmarks: (root, its jpg/)."
    import pickle, shutil
    from objret.data import load_pickle
    from objret.synth import landmark_world
    lm = landmark_world(4, easy=3, hard=3, junk=1, n_distractors=30, seed=5, root=tmp_path/"lm")
    root = tmp_path/"roxford5k"; shutil.copytree(lm/"jpg", root/"jpg")
    d = load_pickle(lm/"gnd_rsynth.pkl")
    d["gnd"] = [{k: v for k, v in g.items() if k != "ok"} for g in d["gnd"]]      # revisited: no classic "ok" lists
    (root/"gnd_roxford5k.pkl").write_bytes(pickle.dumps(d))
    return root, lm/"jpg"


def test_oxford_real_format(tmp_path):
    "reproduce_oxford on a revisited-Oxford layout (gnd_roxford5k.pkl + jpg/, no classic lists): E/M/H and the Medium claim."
    from objret.synth import landmark_world
    root, _ = _roxford_layout(tmp_path)
    white = landmark_world(12, n_distractors=150, seed=6, root=tmp_path/"white")/"jpg"
    pm.execute_notebook(str(ROOT/"nbs"/"reproduce_oxford.ipynb"), str(tmp_path/"out.ipynb"),
                        parameters=dict(dataset="roxford5k", data_root=str(root), whiten_root=str(white), weights=None,
                                        max_images=40, attention_steps=3, scale_levels=[1, 2], results_dir=str(tmp_path)),
                        kernel_name="python3", cwd=str(ROOT/"nbs"), progress_bar=False)
    df = pd.read_csv(tmp_path/"rmac"/"rmac_roxford5k.csv")
    o = df[df.source.str.startswith("objret")]
    assert len(o) == 6 and o[["mAP_E", "mAP_M", "mAP_H"]].notna().all().all() and "mAP" not in o   # no classic lists
    abl = pd.read_csv(tmp_path/"rmac"/"rmac_scales_roxford5k.csv")
    assert sorted(abl.levels.unique()) == [1, 2] and abl.mAP_M.notna().all()


def test_object_embeddings_real_format(tmp_path):
    "reproduce_object_embeddings on a revisited-Oxford layout with torchvision networks (ResNet-18, Faster R-CNN MobileNet-FPN)."
    root, images = _roxford_layout(tmp_path)
    pm.execute_notebook(str(ROOT/"nbs"/"reproduce_object_embeddings.ipynb"), str(tmp_path/"out.ipynb"),
                        parameters=dict(dataset="roxford5k", data_root=str(root), student_root=str(images), student_images=20,
                                        classifier="resnet18", classifier_weights=None, detector="fasterrcnn_mobilenet_v3_large_320_fpn",
                                        detector_weights=None, score_threshold=0.0, max_boxes=3, student_steps=3, max_images=20,
                                        results_dir=str(tmp_path)),
                        kernel_name="python3", cwd=str(ROOT/"nbs"), progress_bar=False)
    df = pd.read_csv(tmp_path/"objemb"/"objemb_roxford5k.csv")
    assert len(df) == 6 and df[["mAP_E", "mAP_M", "mAP_H"]].notna().all().all() and "mAP" not in df   # no classic lists
    assert (df.detector == "fasterrcnn_mobilenet_v3_large_320_fpn").all() and (df.queries == 2).all()
    f = pd.read_csv(tmp_path/"objemb"/"objemb_findings_roxford5k.csv")
    assert len(f) == 3 and f.verdict.str.contains("holds|not resolved|NOT").all() and f.smoke.str.contains("smoke run").all()
    c = pd.read_csv(tmp_path/"objemb"/"objemb_counts_roxford5k.csv")        # the cost ablation: ≤ k objects per image
    assert len(c) == 2 * 6 and c.groupby("representation").vectors_per_image.is_monotonic_increasing.all()
    assert (c[c.max_objects == 0].vectors_per_image == 1).all() and (c[c.max_objects == 3].vectors_per_image <= 4).all()


BAD_PARAMS = [  # notebook, parameters, what the error must say — all raised in the first cells, before any work
    ("reproduce_dense_clip.ipynb", dict(model="ViT-B-32"), "weights 'objret' exist only for objret's tiny clip models"),
    ("reproduce_dense_clip.ipynb", dict(dataset="cocoa"), "dataset='cocoa' is unknown"),
    ("reproduce_flickr.ipynb", dict(regions="yolo"), "regions='yolo'"),
    ("reproduce_coco.ipynb", dict(max_images=1), "at least 2 images"),
    ("reproduce_composed.ipynb", dict(dataset="css3d"), "dataset='css3d' is unknown"),
    ("reproduce_oxford.ipynb", dict(backbone="resnet50"), "weights 'objret' exist only for objret's tiny cnn models"),
    ("reproduce_object_embeddings.ipynb", dict(detector="fasterrcnn_resnet50_fpn"), "tiny detector models"),
    ("reproduce_index.ipynb", dict(factory="IVF,Bogus"), "not a faiss index factory string"),
]


@pytest.mark.parametrize("nb,params,says", BAD_PARAMS, ids=[f"{n}-{list(p)[0]}" for n, p, _ in BAD_PARAMS])
def test_reproduce_notebook_refuses_bad_parameters_before_any_work(nb, params, says, tmp_path):
    "A wrong parameter is a clear error from the notebook's first cells: nothing is generated, trained or written."
    import time
    t0 = time.perf_counter()
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(ROOT/"nbs"/nb), str(tmp_path/nb), parameters={**params, "results_dir": str(tmp_path/"r")},
                            kernel_name="python3", cwd=str(ROOT/"nbs"), progress_bar=False)
    assert says in str(e.value), str(e.value)[-2000:]
    assert e.value.exec_count <= 3, f"failed only at cell {e.value.exec_count}"
    assert time.perf_counter() - t0 < 120
    assert not (tmp_path/"r").exists() or not any((tmp_path/"r").rglob("*.csv"))


OUTSIDE = re.compile(r"METHODS\.md|SYNTH-NOTES|DESIGN\.md|\.\./shared|seed `00|seeds/")

def test_notebooks_and_readme_speak_for_themselves():
    "No notebook, README or module cites files outside the repository: the papers are cited instead."
    files = sorted((ROOT/"nbs").glob("*.ipynb")) + [ROOT/"README.md"] + sorted((ROOT/"objret").glob("*.py"))
    bad = [f.name for f in files if OUTSIDE.search(f.read_text())]
    assert not bad, f"these cite material outside the repository: {bad}"


def test_html_unsafe_text_is_escaped():
    "Markdown cells write <name> as &lt;name&gt; (or in code spans), so that HTML shows it."
    for f in sorted((ROOT/"nbs").glob("*.ipynb")):
        for c in nbformat.read(f, as_version=4).cells:
            if c.cell_type != "markdown": continue
            text = re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", c.source, flags=re.S))
            assert not re.search(r"<[a-z][a-z _-]*>", text), f"{f.name}: {re.search(r'<[a-z][a-z _-]*>', text).group()} in a markdown cell"


def test_dense_clip_on_a_coco_format_file_anywhere(tmp_path):
    "reproduce_dense_clip with ann_file + images_dir alone (file names in a sub-folder): the file named as the split, only held categories queried."
    import shutil
    from objret.synth import object_world
    w = object_world(4, 4, 12, seed=2, progress=False, root=tmp_path/"w")
    d = json.loads((w/"instances_test.json").read_text())
    images = tmp_path/"images"; (images/"val").mkdir(parents=True)
    for im in d["images"]:
        shutil.copy(w/"images"/im["file_name"], images/"val"/im["file_name"]); im["file_name"] = "val/" + im["file_name"]
    held = {a["category_id"] for a in d["annotations"]}
    d["categories"].append({"id": 999, "name": "_background_"})             # a category no image holds: not a query
    (tmp_path/"mine.json").write_text(json.dumps(d))
    out = tmp_path/"out.ipynb"
    pm.execute_notebook(str(ROOT/"nbs"/"reproduce_dense_clip.ipynb"), str(out),
                        parameters=dict(dataset="coco", ann_file=str(tmp_path/"mine.json"), images_dir=str(images), resolution=64,
                                        n_clusters={"kmeans": 4, "agglo-threshold": 4, "agglo-count": 8}, results_dir=str(tmp_path)),
                        kernel_name="python3", cwd=str(ROOT/"nbs"), progress_bar=False)
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs)
    assert "coco (mine.json): 12 images" in text, text[:2000]
    assert f"{len(held)} queries: the categories held by one of the 12 images ({len(d['categories']) - len(held)} others left out)" in text
    df = pd.read_csv(tmp_path/"dense_clip"/"dense_clip_coco.csv")
    assert df[df.source.str.startswith("objret")]["mAP"].notna().all()
