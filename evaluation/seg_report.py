"""`pipeline evaluate --run DIR` of a segmentation run (`--task segmentation` implied): metrics per
subject and structure on the run's test split (validation when the test split is empty), written
as JSON/CSV, overlay PNGs and a report (report.md, report.html).

Each subject is segmented exactly as `pipeline segment` would (original geometry, every slice),
then compared with its labels inside the crop window the run used (the seed's labels only cover
a window around the joint, L163). Structures: the merged ``bone`` for every mode, plus each
bone the model separates (per-bone and multilabel modes). Overlays: three orthogonal views
through the reference centroid, and the slice with the worst HD95 where both masks have voxels.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from data_tools.atomic import atomic_path

from .seg_metrics import BONES, MERGED_BONE, slice_hd95, structure_metrics, summarize
from .statistics import CI_LEVEL, format_difference


def _structures(mode: str) -> dict[str, tuple[int, ...]]:
    if mode == "bone":
        return dict(MERGED_BONE)
    if mode == "multilabel":
        return {**MERGED_BONE, **BONES}
    return {mode: BONES[mode]}


def _window(shape, box) -> np.ndarray:
    x0, y0, s = box
    m = np.zeros(shape, bool)
    m[x0:x0 + s, y0:y0 + s] = True
    return m


def worst_slice(hd95_z: np.ndarray, in_ref: np.ndarray, in_pred: np.ndarray) -> tuple[int, str]:
    """The z slice of :func:`overlay_png`'s worst-HD95 panel and its title: the largest HD95 among
    slices where both masks have voxels (``in_ref``/``in_pred``: per slice), the first of equals;
    the slices with one side only are counted in the title. With no such slice, the largest of all."""
    both = in_ref & in_pred
    one_side = int(np.count_nonzero(in_ref ^ in_pred))
    if both.any():
        z = int(np.flatnonzero(both)[np.argmax(hd95_z[both])])
        note = f"; {one_side} slice{'s' if one_side != 1 else ''} with one side only" if one_side else ""
        return z, f"worst HD95: z = {z} ({hd95_z[z]:.1f} mm{note})"
    z = int(np.argmax(hd95_z))
    side = "one side empty" if one_side else "both empty"
    return z, f"worst HD95: z = {z} ({hd95_z[z]:.1f} mm, {side})"


def overlay_png(image: np.ndarray, ref: np.ndarray, pred: np.ndarray, hd95_z: np.ndarray, spacing, out: Path,
                title: str) -> Path:
    """Four panels: the z, y and x slices through the reference centroid, drawn as `pipeline segment`
    and `pipeline n4` draw them (:func:`data_tools.visualize.image_views`: voxel-size aspect, the
    knee upright), and the z slice with the worst HD95. Reference contour green, prediction red.

    The worst slice is sought among the slices where both masks have voxels: a slice where one side
    is empty has HD95 = the volume diagonal by convention (often a bone's last slice, one further in
    the prediction), which says nothing about the boundary; the title counts such slices. Only when
    no slice has both is the worst of all drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_tools.visualize import image_views

    idx = np.argwhere(ref) if ref.any() else np.argwhere(np.ones_like(ref))
    c = np.round(idx.mean(axis=0)).astype(int)
    worst, worst_title = worst_slice(np.asarray(hd95_z, dtype=float), ref.any(axis=(0, 1)), pred.any(axis=(0, 1)))
    views = image_views(c, np.asarray(spacing, dtype=float))
    _, take_worst, aspect = image_views((c[0], c[1], worst), np.asarray(spacing, dtype=float))[0]
    views.append((worst_title, take_worst, aspect))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    for ax, (name, take, aspect) in zip(axes, views):
        ax.imshow(take(image), cmap="gray", aspect=aspect, interpolation="nearest")
        for mask, colour in ((ref, "lime"), (pred, "red")):
            m = take(mask)
            if m.any():
                ax.contour(m.astype(float), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{title} (green reference, red prediction)", fontsize=10)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    plt.close(fig)
    return out


def _shown(summary: dict[str, Any], key: str, spec: str) -> str:
    """``0.9512 [0.9321, 0.9687]``: a summary's mean of ``key`` and its interval (when there is one)."""
    return format_difference({k: summary[f"{key}_{k}"] for k in ("mean", "ci_low", "ci_high")}, spec)


METRIC_CONVENTIONS = ("Dice/IoU/precision/recall/accuracy in [0,1]; HD/HD95/ASSD in mm (MONAI); both empty -> "
                      "1 / 0 mm; one empty -> 0 / volume diagonal")
CONVENTIONS = METRIC_CONVENTIONS + "; labels compared inside the run's crop window"


def report_tables(doc: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """(summary, per subject) rows of a segmentation evaluation document, headers first: the mean
    [interval over subjects] per structure, and each subject's scores and voxel counts."""
    summary = [["structure", "subjects", "Dice", "IoU", "precision", "recall", "HD95 (mm)", "ASSD (mm)"]]
    for name, v in doc["summary"].items():
        summary.append([name, str(int(v["n"])), *(_shown(v, k, ".4f") for k in ("dice", "iou", "precision", "recall")),
                        *(_shown(v, k, ".2f") for k in ("hd95", "assd"))])
    per = [["subject", "structure", "Dice", "IoU", "HD95 (mm)", "ASSD (mm)", "reference voxels", "predicted voxels"]]
    for r in doc["per_subject"]:
        per.append([r["subject"], r["structure"], f"{r['dice']:.4f}", f"{r['iou']:.4f}", f"{r['hd95']:.2f}",
                    f"{r['assd']:.2f}", f"{int(r['ref_voxels']):,}", f"{int(r['pred_voxels']):,}"])
    return summary, per


def write_report(doc: dict[str, Any], out: Path, figures: list[str]) -> Path:
    """``report.md`` and ``report.html`` of a segmentation evaluation (tables and the overlay PNGs
    ``figures``, paths relative to ``out``), like the denoising evaluation's; returns report.md."""
    import html

    from data_tools.atomic import write_text_atomic

    from .report import html_page, html_table, markdown_figures, markdown_table

    many = len(doc["subjects"]) > 1
    subjects = f"{len(doc['subjects'])} subject{'s' * many}: {', '.join(doc['subjects'])}"
    if "run" in doc:
        run = Path(doc["run"])
        title = f"Segmentation evaluation: {run.parent.name}/{run.name}"
        what = (f"Run `{doc['run']}`, checkpoint `{doc['checkpoint']}`, split `{doc['split']}` ({subjects}), "
                f"label mode `{doc['label_mode']}`. ")
    else:  # label maps against references (evaluate_segmentation_folders)
        title = f"Segmentation evaluation: {Path(doc['predictions']).name} against {Path(doc['references']).name}"
        what = f"Label maps `{doc['predictions']}` against the references `{doc['references']}` ({subjects}). "
        if doc.get("ref_label_map"):
            what += f"The reference values translated by the label map {doc['ref_label_map']}. "
    intro = (what + (f"Values: mean [{CI_LEVEL:.0%} interval over subjects]. " if many else "")
             + f"Conventions: {doc['conventions']}.")
    summary, per = report_tables(doc)
    sections = {"Overlays (green reference, red prediction; last panel: the slice with the worst HD95 "
                "where both have the structure)": figures}
    sections = {k: v for k, v in sections.items() if v}
    md = [f"# {title}", "", intro, "", "## Summary", "", markdown_table(summary), "", "## Per subject", "",
          markdown_table(per), *markdown_figures(sections)]
    body = [f"<p>{html.escape(intro)}</p>", "<h2>Summary</h2>", html_table(summary), "<h2>Per subject</h2>",
            html_table(per)]
    write_text_atomic(out / "report.html", html_page(title, body, sections))
    return write_text_atomic(out / "report.md", "\n".join(md) + "\n")


def evaluate_segmentation_run(run_dir: str | Path, out: str | Path, which: str = "best", split: str = "test",
                              device: str = "cpu", batch_size: int = 8, data: str | Path | None = None,
                              figures: bool = True, progress: bool = True) -> dict[str, Any]:
    """Evaluate a segmentation run on the subjects of ``split`` (its split as saved in the
    checkpoint: test, val, train or all; ``test`` falls back to val when the run has no test
    subjects); writes ``metrics.json``, ``per_subject.csv``, ``report.md``/``report.html`` and
    (``figures``) ``figures/<subject>.png`` under ``out``; returns the JSON document. ``device``: auto, cpu or
    cuda[:n]; ``batch_size``: slices per forward pass of a 2-D network. ``data``: the folder of
    labelled subjects (subject .h5 files or images/ + labels/); default: the one the run was
    trained on (its ``config.yaml``), e.g. when the run was trained on another machine."""
    from tqdm import tqdm

    from data_tools.config_io import require_count
    from data_tools.errors import PipelineInputError
    from data_tools.seg_preprocess import channels_to_labels, crop_resize_z
    from evaluation.benchmark import resolve_device
    from pipeline.seg_data import load_volumes
    from pipeline.runs import trained_data_dir
    from pipeline.seg_infer import load_seg_run, predict_volume

    if split not in ("test", "val", "train", "all"):
        raise PipelineInputError(f"unknown split '{split}'", field="split", expected="test, val, train or all")
    require_count(batch_size, "batch_size")
    dev = resolve_device(device)
    run_dir, out = Path(run_dir), Path(out)
    net, prep, cfg = load_seg_run(run_dir, which, field="run")
    net = net.to(dev)
    if data is None:
        data = trained_data_dir(cfg)
    vols = {v.name: v for v in load_volumes(data, prep.get("label_map"))}  # the run's translation of the values
    saved = prep["splits"]
    if split == "test" and not saved.get("test"):
        split = "val"
    wanted = [n for part in ("train", "val", "test") for n in saved.get(part, [])] if split == "all" else saved.get(split, [])
    names = [n for n in wanted if n in vols]
    if not names:
        raise PipelineInputError(f"none of the run's {split} subjects ({', '.join(wanted) or 'none'}) is in the data "
                                 f"({data or 'the embedded phantom'})", path=run_dir, field="splits",
                                 hint="pass the folder of the subjects it was trained on with --data-dir")
    mode = prep["label_mode"]
    structures = _structures(mode)
    rows, flat = [], []
    for name in tqdm(names, desc=f"segment {split} subjects", disable=not progress):
        v = vols[name]
        prob = predict_volume(net, prep, v.image, v.spacing, batch=batch_size)
        pred = channels_to_labels(prob, mode)
        if mode in BONES:  # 'bone' predicts label 1, which the merged structure (1, 2, 3) covers
            pred = np.where(pred > 0, BONES[mode][0], 0).astype(np.uint8)
        _, _, geo = crop_resize_z(v.image, None, int(prep["size"]), 1, detector=prep["detector"])
        win = _window(v.labels.shape, geo.box)
        ref = np.where(win, v.labels, 0)
        m = structure_metrics(pred, ref, v.spacing, structures)
        rows.append(m)
        for s, vals in m.items():
            flat.append({"subject": name, "structure": s, **vals})
        if figures:
            first = next(iter(structures.values()))
            r, p = np.isin(ref, first), np.isin(pred, first)
            h = slice_hd95(p, r, v.spacing, axis=2)
            overlay_png(v.image, r, p, h, v.spacing, out / "figures" / f"{name}.png",
                        f"{run_dir.name} {name} {next(iter(structures))}")
    doc = {"run": str(run_dir), "checkpoint": which, "split": split, "label_mode": mode, "subjects": names,
           "summary": summarize(rows), "per_subject": flat,
           "conventions": CONVENTIONS}
    return _write_outputs(doc, out, names if figures else [], split)


def _write_outputs(doc: dict[str, Any], out: Path, drawn: list[str], which: str) -> dict[str, Any]:
    """metrics.json, per_subject.csv and the report of ``doc``; the summary printed (``which``: the
    split, or what was compared); ``drawn``: the subjects with a figure."""
    flat = doc["per_subject"]
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=2))
    with atomic_path(out / "per_subject.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(flat[0]))
            w.writeheader()
            w.writerows(flat)
    for s, vals in doc["summary"].items():
        interval = f"; [ ]: {CI_LEVEL:.0%} interval over subjects" if vals["dice_ci_low"] is not None else ""
        print(f"{s}: Dice {_shown(vals, 'dice', '.4f')}  IoU {_shown(vals, 'iou', '.4f')}  "
              f"HD95 {_shown(vals, 'hd95', '.2f')} mm  ASSD {_shown(vals, 'assd', '.2f')} mm  "
              f"(n={int(vals['n'])}, {which}{interval})")
    report = write_report(doc, out, [f"figures/{name}.png" for name in drawn])
    print(f"segmentation report: {report} (report.html, metrics.json, per_subject.csv{', figures/' if drawn else ''})")
    return doc


def evaluate_segmentation_folders(pred_dir: str | Path, ref_dir: str | Path, out: str | Path, figures: bool = True,
                                  progress: bool = True, ref_label_map: dict | str | None = None) -> dict[str, Any]:
    """Score label maps made by any tool against reference label maps (nnU-Net's evaluate_folder):
    the image files of ``ref_dir`` (:func:`data_tools.formats.images.image_files`), each with the file
    of the same name in ``pred_dir`` (same shape and geometry); structures: ``foreground`` (any label)
    and each label value either side has (``label k``; values have no names across datasets).
    Writes what :func:`evaluate_segmentation_run` writes; the overlays draw the foreground.
    ``ref_label_map`` translates the references' values first (another dataset's labels, e.g.
    ``oai_zib``: :func:`data_tools.seg_preprocess.resolve_label_map`)."""
    from tqdm import tqdm

    from data_tools.errors import PipelineInputError
    from data_tools.formats.images import image_files, label_values, read_image, same_geometry
    from data_tools.seg_preprocess import apply_label_map, resolve_label_map

    mapping = resolve_label_map(ref_label_map, field="ref_label_map")
    pred_dir, ref_dir, out = Path(pred_dir), Path(ref_dir), Path(out)
    for folder, field in ((pred_dir, "pred"), (ref_dir, "ref")):
        if not folder.is_dir():
            raise PipelineInputError("not a folder", path=folder, field=field, expected="a folder of label maps")
    refs, preds = image_files(ref_dir, required="ref"), image_files(pred_dir)
    missing = [n for n in refs if n not in preds]
    if missing:
        raise PipelineInputError(f"no label map for {len(missing)} reference(s): {', '.join(missing[:5])}"
                                 + (" ..." if len(missing) > 5 else ""), path=pred_dir, field="pred",
                                 expected="a label map per reference, named like it (any image suffix)")
    extra = sorted(set(preds) - set(refs))
    if extra:
        print(f"note: {len(extra)} label map(s) without a reference left out: {', '.join(extra[:5])}"
              + (" ..." if len(extra) > 5 else ""))
    def read_pair(name: str):
        ref_path = refs[name]
        ref, pred = read_image(ref_path), read_image(preds[name])
        found = []  # each side's label values, as label_values counted them
        for img, path, field in ((ref, ref_path, "ref"), (pred, preds[name], "pred")):
            counted = label_values(img)
            if counted is None:
                raise PipelineInputError("not a label map", path=path, field=field,
                                         expected="an integer image with at most 64 values, none negative")
            found.append([int(v) for v in counted[0]])
        if pred.shape != ref.shape or not same_geometry(pred, ref):
            raise PipelineInputError("label map geometry differs from its reference", path=preds[name], field="pred",
                                     expected=f"shape {ref.shape}, spacing {ref.spacing}, origin {ref.origin} "
                                              f"({ref_path.name})")
        r = apply_label_map(np.asarray(ref.array), mapping, str(ref_path))  # refuses a value it does not map
        ref_values = found[0] if mapping is None else [mapping.get(v, v) for v in found[0]]
        return np.asarray(pred.array), r, ref.spacing, [v for v in ref_values + found[1] if v > 0]

    # a first pass checks every pair (nothing is written before a bad file is named) and collects the
    # label values, one pair in memory at a time; every value either side is scored (a label only
    # the predictions have is a false positive)
    values = sorted({v for name in refs for v in read_pair(name)[3]})
    structures = {"foreground": tuple(values), **{f"label {v}": (v,) for v in values}}
    rows, flat = [], []
    for name in tqdm(refs, desc="score label maps", disable=not progress):
        pred, ref, spacing, _ = read_pair(name)
        m = structure_metrics(pred, ref, spacing, structures)
        rows.append(m)
        flat += [{"subject": name, "structure": s, **vals} for s, vals in m.items()]
        if figures:
            r, p = ref > 0, pred > 0
            overlay_png(r.astype(np.float32) * 0.5, r, p, slice_hd95(p, r, spacing, axis=2), spacing,
                        out / "figures" / f"{name}.png", f"{name} foreground")
    doc = {"predictions": str(pred_dir), "references": str(ref_dir), "label_mode": "label values",
           "ref_label_map": mapping,
           "subjects": list(refs), "summary": summarize(rows), "per_subject": flat, "conventions": METRIC_CONVENTIONS}
    return _write_outputs(doc, out, list(refs) if figures else [], "label maps")
