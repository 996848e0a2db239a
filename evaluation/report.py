"""Write an evaluation: ``metrics.json``, ``per_image.csv``, figures, ``report.md``/``report.html``,
and the console table (M-MAE / M-MSE / M-SSIM of every model and the benchmark per test set).

Nothing here carries a timestamp, so re-running the same evaluation rewrites identical files.
"""
from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from data_tools.atomic import atomic_path, write_text_atomic

from .benchmark import BENCHMARK, DatasetResult
from .metrics import FAIL_M_MAE_ABOVE, FAIL_M_SSIM_BELOW, METRIC_NAMES
from .statistics import CI_LEVEL, format_difference, paired_difference

TABLE_METRICS = ("mae", "mse", "ssim")
DIFF_INTRO = (f"Mean paired difference over the test images (model minus benchmark: a positive ΔM-SSIM and a "
              f"negative ΔM-MAE / ΔM-MSE are improvements) with its {CI_LEVEL:.0%} t interval over "
              f"the test subjects (the slices of one knee are not independent samples: each knee's mean "
              f"difference is one observation); with one test subject there is no interval, with few it is wide.")
#: For these a lower value is better; for the others (ssim, psnr) higher is better.
LOWER_IS_BETTER = {"mae", "mse", "nmse"}


def _clean(x: Any) -> Any:
    """JSON-safe: non-finite floats become null (strict JSON has no NaN/Infinity)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def safe_name(name: str) -> str:
    """A model name (``experiment/run``) as a file-name part."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.replace("/", "__"))


def _breaks(model: Mapping[str, Any], bench: Mapping[str, Any]) -> dict[str, bool | None]:
    out: dict[str, bool | None] = {}
    for m in TABLE_METRICS:
        a, b = model[m]["mean"], bench[m]["mean"]
        out[m] = None if a is None or b is None else bool(a < b if m in LOWER_IS_BETTER else a > b)
    return out


def metrics_document(results: Sequence[DatasetResult], models: Mapping[str, str] | None = None,
                     data_range: float = 1.0,
                     seen: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """The content of ``metrics.json``.

    ``{"split", "ssim_variant", "data_range", "failure_rule", "models": {name: run_dir},
    "datasets": {name: {"path", "channels", "count", "benchmark": summary, "models": {name: summary
    + "breaks_benchmark" + "vs_benchmark"}, "skipped": {name: reason}}}}``; a summary holds per
    metric ``mean`` (null when any image is non-finite), ``finite_mean``, ``std``, ``count``,
    ``nonfinite``, plus ``failed``, ``nonfinite_images`` and ``count``; ``vs_benchmark`` holds per
    table metric the paired difference model - benchmark with its t interval over the test
    subjects (:func:`evaluation.statistics.paired_difference`); ``seen_in_training``: null, or
    ``{"slices", "of", "in"}`` when the model trained (or validated) on ``slices`` of the ``of`` slices
    scored here (files split by another rule, ``seen[dataset][model]``): not held out.
    """
    doc: dict[str, Any] = {
        "split": results[0].split if results else None,
        "ssim_variant": results[0].ssim_variant if results else None,
        "data_range": data_range,
        "failure_rule": f"M-SSIM < {FAIL_M_SSIM_BELOW} or M-MAE > {FAIL_M_MAE_ABOVE} or any non-finite prediction",
        "models": dict(models or {}),
        "datasets": {},
    }
    for r in results:
        sums = r.summary()
        bench = sums.pop(BENCHMARK)
        entry = {"path": str(r.path), "channels": r.channels, "count": int(len(r.rows)), "benchmark": bench,
                 "models": {}, "skipped": dict(r.skipped)}
        subjects = r.columns["subject"]
        for name, s in sums.items():
            vs = {m: paired_difference(r.per_image[name][m], r.per_image[BENCHMARK][m], subjects,
                                       lower_is_better=m in LOWER_IS_BETTER) for m in TABLE_METRICS}
            entry["models"][name] = {**s, "breaks_benchmark": _breaks(s, bench), "vs_benchmark": vs,
                                     "seen_in_training": ((seen or {}).get(r.name) or {}).get(name)}
        doc["datasets"][r.name] = entry
    return _clean(doc)


def write_per_image_csv(results: Sequence[DatasetResult], out: str | Path) -> Path:
    """One row per (dataset, model, image): index columns and every metric of :data:`METRIC_NAMES`."""
    keys = ("subject", "axis", "slice_index", "slice_id", "interleave")
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "model", "row", *keys, *METRIC_NAMES])
        for r in results:
            for model, vals in r.per_image.items():
                for i, row in enumerate(r.rows):
                    w.writerow([r.name, model, int(row), *(r.columns[k][i] for k in keys),
                                *(repr(float(vals[m][i])) for m in METRIC_NAMES)])
    return Path(out)


def _fmt(v: Any, metric: str) -> str:
    if v is None:
        return "NaN"
    return f"{v:.3e}" if metric in ("mse", "nmse") else f"{v:.4f}"


def table_rows(doc: Mapping[str, Any], metrics: Sequence[str] = TABLE_METRICS,
               skipped: bool = True) -> list[list[str]]:
    """Rows ``[dataset, model, M-*..., failed, images]`` with the benchmark first per dataset, then
    (``skipped``) a row per model that could not run on the dataset."""
    rows = []
    for d, entry in doc["datasets"].items():
        for name, s in [(BENCHMARK, entry["benchmark"]), *entry["models"].items()]:
            bad = s.get("nonfinite_images", 0)
            flag = "FAILED" if s["failed"] else "ok"
            if bad:
                flag += f" ({bad} non-finite)"
            if s.get("seen_in_training"):
                flag += "; not held out"
            rows.append([d, name, *(_fmt(s[m]["mean"], m) for m in metrics), "-" if name == BENCHMARK else flag,
                         str(s["count"])])
        for name, why in (entry.get("skipped", {}) if skipped else {}).items():
            rows.append([d, name, *("-" for _ in metrics), f"skipped: {why}", "0"])
    return rows


DIFF_HEADER = ["test set", "model", *(f"ΔM-{m.upper()} [{CI_LEVEL:.0%} CI]" for m in TABLE_METRICS),
               "images better (SSIM)", "subjects better (SSIM)", "test subjects"]


def difference_rows(doc: Mapping[str, Any]) -> list[list[str]]:
    """Rows ``[dataset, model, ΔM-MAE, ΔM-MSE, ΔM-SSIM (each with its interval), images better,
    subjects better, test subjects]`` for every evaluated model (model minus benchmark; see
    :mod:`evaluation.statistics`)."""
    rows = []
    for d, entry in doc["datasets"].items():
        for name, s in entry["models"].items():
            vs = s.get("vs_benchmark") or {}
            ssim = vs.get("ssim") or {}
            better = "-" if ssim.get("images_better") is None else f"{ssim['images_better']:.0%}"
            subj = "-" if ssim.get("subjects_better") is None else f"{ssim['subjects_better']} of {ssim['subjects']}"
            rows.append([d, name, *(format_difference(vs.get(m), "+.3e" if m == "mse" else "+.4f")
                                    for m in TABLE_METRICS), better, subj, str(ssim.get("subjects", "-"))])
    return rows


def difference_notes(doc: Mapping[str, Any]) -> list[str]:
    """One console line per model and test set: ΔM-SSIM with its interval over the test subjects."""
    lines = []
    for d, entry in doc["datasets"].items():
        for name, s in entry["models"].items():
            ssim = (s.get("vs_benchmark") or {}).get("ssim")
            if ssim and ssim.get("mean") is not None:
                n = ssim["subjects"]
                lines.append(f"{d}: {name} ΔM-SSIM vs benchmark {format_difference(ssim)} ({n} test subject"
                             f"{'s' * (n != 1)}, {ssim['images']} images"
                             f"{'' if ssim.get('ci_low') is not None else '; one subject gives no interval'})")
    return lines


def _header(metrics: Sequence[str]) -> list[str]:
    return ["test set", "model", *(f"M-{m.upper()}" for m in metrics), "status", "images"]


def console_table(doc: Mapping[str, Any], metrics: Sequence[str] = TABLE_METRICS):
    """A rich Table of M-MAE / M-MSE / M-SSIM for the benchmark and every model per test set.
    Model names wrap rather than end in an ellipsis (``dncnn_ssim…`` named two runs); models
    skipped on a dataset are :func:`skipped_notes`, not rows."""
    from rich.table import Table

    t = Table(title=f"{doc['split']} split, SSIM variant '{doc['ssim_variant']}' (benchmark = input vs target)")
    for h in _header(metrics):
        t.add_column(h, justify="right" if h.startswith("M-") or h == "images" else "left",
                     overflow="fold" if h == "model" else "ellipsis")
    last = None
    for row in table_rows(doc, metrics, skipped=False):
        if last is not None and row[0] != last:
            t.add_section()
        last = row[0]
        t.add_row(*row, style="bold" if row[1] == BENCHMARK else None)
    return t


def skipped_notes(doc: Mapping[str, Any]) -> list[str]:
    """One line per dataset and reason: the models that could not run on it (a coil model on an
    image-space set and the reverse), e.g. ``rad_41: skipped a, b (model takes 16 channels, ...)``."""
    lines = []
    for d, entry in doc["datasets"].items():
        by_reason: dict[str, list[str]] = {}
        for name, why in entry.get("skipped", {}).items():
            by_reason.setdefault(why, []).append(name)
        lines += [f"{d}: skipped {', '.join(names)} ({why})" for why, names in by_reason.items()]
    return lines


def seen_notes(doc: Mapping[str, Any]) -> list[str]:
    """One line per model and test set whose scored slices it trained or validated on."""
    lines = []
    for d, entry in doc["datasets"].items():
        for name, s in entry["models"].items():
            if info := s.get("seen_in_training"):
                lines.append(f"{d}: {name} trained or validated on {info['slices']} of the {info['of']} {doc['split']} "
                             f"slices scored here (in {', '.join(info['in'])}, split by another rule): these "
                             f"scores are not held out; simulate all datasets with one --split rule")
    return lines


def print_table(doc: Mapping[str, Any], console=None) -> None:
    """Print :func:`console_table` and the :func:`skipped_notes` (``make demo`` ends with this)."""
    from rich.console import Console

    console = console or Console()
    console.print(console_table(doc))
    for line in difference_notes(doc) + skipped_notes(doc):
        console.print(line, markup=False, highlight=False)
    for line in seen_notes(doc):
        console.print(f"warning: {line}", markup=False, highlight=False, style="bold red")


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of ``rows``; the first row is the header."""
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def html_table(rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of ``rows`` (escaped); the first row is the header."""
    head, *body = rows
    e = html.escape
    return "\n".join(["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>",
                      *("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body), "</table>"])


def _markdown(doc: Mapping[str, Any], figures: Mapping[str, Sequence[str]], title: str) -> str:
    metrics = ("mae", "mse", "ssim", "psnr", "bias")
    lines = [f"# {title}", "", f"Split `{doc['split']}`, SSIM variant `{doc['ssim_variant']}`, data range "
             f"{doc['data_range']}. Benchmark = the undersampled input against the fully sampled target. "
             f"Failure rule: {doc['failure_rule']}.", "",
             markdown_table([_header(metrics), *table_rows(doc, metrics)])]
    lines += [f"\n**Not held out**: {line}" for line in seen_notes(doc)]
    diffs = difference_rows(doc)
    if diffs:
        lines += ["", "## Model minus benchmark", "", DIFF_INTRO, "", markdown_table([DIFF_HEADER, *diffs])]
    lines += markdown_figures(figures)
    return "\n".join(lines) + "\n"


def markdown_figures(figures: Mapping[str, Sequence[str]]) -> list[str]:
    """Markdown lines of ``{section: [PNG paths relative to the report]}``: a heading and the images."""
    lines: list[str] = []
    for section, paths in figures.items():
        lines += ["", f"## {section}", ""] + [f"![{Path(p).stem}]({p})" for p in paths]
    return lines


def html_page(title: str, body: Sequence[str], figures: Mapping[str, Sequence[str]]) -> str:
    """A report page: ``title``, the HTML snippets ``body``, then each figure section (linked images)."""
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
           "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #999;padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>",
           f"<h1>{e(title)}</h1>", *body]
    for section, paths in figures.items():
        out.append(f"<h2>{e(section)}</h2>")
        out += [f"<p><a href='{e(p)}'><img src='{e(p)}' alt='{e(Path(p).stem)}'></a></p>" for p in paths]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html(doc: Mapping[str, Any], figures: Mapping[str, Sequence[str]], title: str) -> str:
    metrics = ("mae", "mse", "ssim", "psnr", "bias")
    e = html.escape
    out = [f"<p>Split <code>{e(str(doc['split']))}</code>, SSIM variant "
           f"<code>{e(str(doc['ssim_variant']))}</code>. Failure rule: {e(doc['failure_rule'])}.</p>",
           html_table([_header(metrics), *table_rows(doc, metrics)])]
    out += [f"<p><b>Not held out</b>: {e(line)}</p>" for line in seen_notes(doc)]
    diffs = difference_rows(doc)
    if diffs:
        out += ["<h2>Model minus benchmark</h2>", f"<p>{e(DIFF_INTRO)}</p>", html_table([DIFF_HEADER, *diffs])]
    return html_page(title, out, figures)


def _write_figures(results: Sequence[DatasetResult], doc: Mapping[str, Any], out: Path) -> dict[str, list[str]]:
    """All PNGs under ``out/figures``; returns ``{report section: [relative paths]}``."""
    from . import figures as figs

    fig_dir = out / "figures"
    sums = {d: {BENCHMARK: e["benchmark"], **e["models"]} for d, e in doc["datasets"].items()}
    bars = "Metrics per test set (black line: benchmark)"
    sections: dict[str, list[str]] = {bars: []}
    for m in ("mae", "mse", "ssim", "bias"):
        sections[bars].append(str(figs.metric_bars(sums, m, fig_dir / f"bars_{m}.png").relative_to(out)))
    for r in results:
        for model in r.per_image:
            if model == BENCHMARK:
                continue
            stem = f"{r.name}__{safe_name(model)}"
            sections[f"{r.name}: {model}"] = [
                str(figs.example_panels(r, model, fig_dir / f"{stem}__slices.png").relative_to(out)),
                str(figs.scatter_vs_benchmark(r, model, fig_dir / f"{stem}__scatter.png").relative_to(out)),
            ]
    return sections


def write_report(results: Sequence[DatasetResult], out_dir: str | Path, models: Mapping[str, str] | None = None,
                 title: str = "Evaluation", data_range: float = 1.0, figures: bool = True,
                 seen: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """Write metrics.json, per_image.csv, figures/*.png, report.md and report.html under ``out_dir``.

    ``figures=False`` skips the PNGs (the report then has tables only); ``seen``: see
    :func:`metrics_document`. Returns the metrics document.
    """
    out = Path(out_dir)
    doc = metrics_document(results, models, data_range=data_range, seen=seen)
    write_text_atomic(out / "metrics.json", json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n")
    write_per_image_csv(results, out / "per_image.csv")
    sections = _write_figures(results, doc, out) if figures else {}
    write_text_atomic(out / "report.md", _markdown(doc, sections, title))
    write_text_atomic(out / "report.html", _html(doc, sections, title))
    return doc
