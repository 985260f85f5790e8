"""Why the object-embeddings student stays below its teacher, and the crops that narrow the gap, measured in one run.

    python bench/student_crops.py                 # 14 minutes on 2 CPU cores (840 s, one run)
    python bench/student_crops.py --big           # also 15,000 student images (3,000 and 10,000 steps), without crops

The reproduce notebook's defaults: the shipped tiny CNN (teacher) and tiny detector, 3,000 student images of other
landmarks (seed 2), MAC, 3×3 RoIAlign, at most 10 boxes of score ≥ 0.2, cosine loss, 3,000 steps.
1. Choosing `student_crops` on a **validation** world (50 other landmarks, seed 3, 500 distractors): the student's mAP
   with 0, 1 and 2 random crops (`objret.objemb.random_crops`) of each training image beside the whole image.
2. The diagnosis on the **test** world (reproduce_object_embeddings' own, seed 0): the student's cosine to its
   teacher on the database and on the query crops, and mAP with each side (database, queries) from student or
   teacher; then a student fitted on the database itself (10,000 steps): if it matches the teacher there but not on
   the queries, the head is big enough and generalisation is what fails.
mAP is the mean of best matches over {global} ∪ objects, as in the notebook.
"""
import argparse

import pandas as pd
import torch

from objret.data import load_instance_gnd
from objret.objemb import extract, image_sets, random_crops, set_similarity, student_pairs, train_student
from objret.rmac import IMAGE_SUFFIXES, RmacImages, instance_map
from objret.synth import landmark_world
from objret.train import TinyCnnConfig, TinyDetectorConfig, tiny_cnn, tiny_detector

KW = dict(pool="mac", output_size=3, max_boxes=10, score_threshold=0.2, roi_features="pooled", batch_size=32)


def student_set(n):
    "The notebook's student images: views of other landmarks (seed 2) and distractors."
    n_lm = max(1, n // 15)
    root = landmark_world(n_lm, n_distractors=max(n - 12 * n_lm, 0), seed=2)/"jpg"
    return RmacImages(root, sorted(p.name for p in root.iterdir() if p.suffix in IMAGE_SUFFIXES)[:n])


def retrieval_world(seed, nets):
    "Database and query features of a landmark world (50 landmarks, 500 distractors), and its ground truth."
    root = landmark_world(50, n_distractors=500, seed=seed)
    d = load_instance_gnd(root/"gnd_rsynth.pkl", root/"jpg")
    return (extract(*nets, RmacImages(d.root, d.files), desc=f"database (seed {seed})", **KW),
            extract(*nets, RmacImages(d.root, d.query_files, boxes=d.query_boxes), desc=f"queries (seed {seed})", **KW), d.gnd)


def teacher(f): return f.cls_global, f.objects
def student_of(s): return lambda f: (s.embed(f.roi_whole), s.embed(f.roi))


def mean_of_best(db, q, gnd, db_side, q_side):
    "mAP (mean of best matches) with the database's vectors from `db_side` and the queries' from `q_side`."
    dv, dc = image_sets(*db_side(db), db.regions.box_image); qv, qc = image_sets(*q_side(q), q.regions.box_image)
    return instance_map(set_similarity(dv, dc, qv, qc, "mean"), gnd)["mAP"]


def agreement(s, f):
    "Mean cosine of student to teacher: whole images, boxes."
    w, b = student_of(s)(f)
    return float((w * f.cls_global).sum(1).mean()), float((b * f.objects).sum(1).mean())


def train(feats, steps=3000):
    X, T = map(torch.cat, zip(*(student_pairs(f) for f in feats)))
    return train_student(X, T, "cosine", steps=steps)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="also 15,000 student images (3,000 and 10,000 steps), no crops")
    a = ap.parse_args()
    nets = (tiny_cnn(TinyCnnConfig(model="objret-tiny-cnn")), tiny_detector(TinyDetectorConfig(model="objret-tiny-detector")))
    ims = student_set(3000)
    tr = extract(*nets, ims, desc="student set", **KW)
    crops = [extract(*nets, random_crops(ims, seed=k), desc=f"student crops {k + 1}", **KW) for k in range(2)]

    vdb, vq, vgnd = retrieval_world(3, nets)
    rows = []
    for k in range(3):
        s = train([tr, *crops[:k]])
        rows.append({"student_crops": k, "student": mean_of_best(vdb, vq, vgnd, student_of(s), student_of(s))})
    v = pd.DataFrame(rows).assign(teacher=mean_of_best(vdb, vq, vgnd, teacher, teacher))
    print("1. validation world (seed 3): mAP, mean of best matches\n" + v.round(2).to_string(index=False))

    db, q, gnd = retrieval_world(0, nets)
    students = {"whole images (no crops)": train([tr]), "whole images + 1 crop (the default)": train([tr, crops[0]]),
                "fitted on the test database itself, 10,000 steps": train([db], steps=10000)}
    if a.big:
        big = extract(*nets, student_set(15000), desc="15,000 student images", **KW)
        students.update({"15,000 images, 3,000 steps": train([big]), "15,000 images, 10,000 steps": train([big], steps=10000)})
    d = []
    for name, s in students.items():
        (dw, dbx), (qw, qb) = agreement(s, db), agreement(s, q)
        d.append({"student": name, "cos db whole": dw, "cos db boxes": dbx, "cos queries whole": qw, "cos queries boxes": qb,
                  "mAP both student": mean_of_best(db, q, gnd, student_of(s), student_of(s)),
                  "mAP db student, queries teacher": mean_of_best(db, q, gnd, student_of(s), teacher),
                  "mAP db teacher, queries student": mean_of_best(db, q, gnd, teacher, student_of(s))})
    print(f"2. test world (seed 0): the teacher's mAP {mean_of_best(db, q, gnd, teacher, teacher):.2f}")
    print(pd.DataFrame(d).set_index("student").round(3).T.to_string())


if __name__ == "__main__":
    main()
