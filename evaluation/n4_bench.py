"""`pipeline bench n4`: our shrunk-fit N4 against SimpleITK's default on the same image, same run.

The image is what the seed ran N4 on (L205): one phantom subject after crop/resize to 224 and the
z rule (24 x 224 x 224), with its known bias field carried through the same steps. Both runs use
the same mask; the error is :func:`data_tools.n4.bias_field_error` inside the body.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from data_tools.atomic import atomic_path
from data_tools.machine import machine_info


def run_bench_n4(out: str = "reports/bench_n4.json", shrink: int = 4, preset: str = "demo", seed: int = 0,
                 mask: str = "auto", size: Optional[int] = None) -> dict:
    from data_tools.errors import require

    require(mask in ("auto", "none"), f"unknown mask {mask!r}", field="mask", expected="auto | none")
    import SimpleITK as sitk

    from data_tools.n4 import N4Params, bias_field_error, coefficient_of_variation, n4_correct, otsu_mask
    from data_tools.phantom import generate_subject
    from data_tools.seg_preprocess import SIZE, crop_resize_z
    from data_tools.coronal import phantom_to_coronal

    s = generate_subject(preset, seed=seed)
    img = phantom_to_coronal(s.rss)
    bias = phantom_to_coronal(s.bias_field)
    lab = phantom_to_coronal(s.labels)
    side = SIZE if size is None else int(size)
    pi, pl, geo = crop_resize_z(img, lab, size=side)
    pb, _, _ = crop_resize_z(bias, None, size=side)
    v = s.attrs["voxel_size_mm"]
    f = geo.box[2] / side
    sp = (v[2] * f, v[0] * f, v[1] * geo.z_step)
    vol, true_bias, labels = pi.transpose(1, 2, 0), pb.transpose(1, 2, 0), pl.transpose(1, 2, 0)
    m = otsu_mask(vol) if mask == "auto" else None
    body = otsu_mask(vol)
    results = {}
    for name, sh in (("ours_shrink%d" % shrink, shrink), ("simpleitk_default", 1)):
        r = n4_correct(vol, sp, mask=m, params=N4Params(shrink=sh), use_cache=False)
        results[name] = {"seconds": r.seconds, "shrink": sh,
                         "bias_field_error": bias_field_error(r.bias_field, true_bias, body),
                         "cov_bone_before": coefficient_of_variation(vol, np.isin(labels, (1, 2, 3))),
                         "cov_bone_after": coefficient_of_variation(r.corrected, np.isin(labels, (1, 2, 3)))}
        results[name]["_bias"] = r.bias_field
    ours, ref = results["ours_shrink%d" % shrink], results["simpleitk_default"]
    doc = {
        "benchmark": "N4 bias-field correction: shrunk fit vs SimpleITK default (same image, same run)",
        "image": {"source": f"phantom {preset} seed {seed}", "shape_xyz": list(vol.shape), "spacing_mm": list(sp),
                  "mask": mask},
        "machine": {**machine_info(),
                    "simpleitk": sitk.Version_VersionString(), "threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()},
        "ours": {k: v for k, v in ours.items() if not k.startswith("_")},
        "simpleitk_default": {k: v for k, v in ref.items() if not k.startswith("_")},
        "speedup": ref["seconds"] / max(ours["seconds"], 1e-9),
        "error_ratio": ours["bias_field_error"] / max(ref["bias_field_error"], 1e-12),
    }
    outp = Path(out)
    with atomic_path(outp) as tmp:
        tmp.write_text(json.dumps(doc, indent=2))
    _figure(vol, true_bias, ours["_bias"], ref["_bias"], outp.with_suffix(".png"), doc)
    print(json.dumps({k: doc[k] for k in ("speedup", "error_ratio")}), f"-> {outp}")
    return doc


def _figure(vol, true_bias, ours, ref, path: Path, doc: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = vol.shape[2] // 2
    norm = lambda b: b[..., z] / b[..., z].mean()  # noqa: E731 - N4 fields are defined up to scale
    panels = [("image", vol[..., z]), ("true bias", norm(true_bias)),
              (f"shrink {doc['ours']['shrink']}: {doc['ours']['seconds']:.1f} s", norm(ours)),
              (f"SimpleITK default: {doc['simpleitk_default']['seconds']:.1f} s", norm(ref))]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
    for ax, (t, a) in zip(axes, panels):
        ax.imshow(a.T, cmap="gray" if t == "image" else "magma", origin="lower")
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    plt.close(fig)
