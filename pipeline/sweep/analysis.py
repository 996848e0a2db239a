"""Grid analysis as in the chapter's §8.3-8.4 (reference §6.4): Figure 26's two OLS regressions,
per-group M-SSIM histograms with the benchmark line (Figure 30), the top-15 table, the runtime
histogram (Figure 24) and failure rates. Markdown + PNG into ``<sweep>/analysis/``.

Regressions (statsmodels OLS, conventional standard errors as in the chapter's stargazer table):

* (a) ``m_ssim`` on the covariates for **successful** models (done and not ``model_failed``);
* (b) linear probability model of ``model_failed`` (0/1) on **all** finished models.

Covariates come from the spec's ``analysis`` section::

    analysis:
      covariates: {depth: model.init_args.depth, filter_size: model.init_args.kernel}   # numeric
      categorical:                                        # dummies, reference level dropped
        loss_scheme: {key: loss, reference: l1}
      group_by: loss_scheme                               # histogram panels

Without it: numeric grid keys become covariates, other varying keys dummies (first value = reference).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from data_tools.atomic import atomic_path, write_text_atomic
from data_tools.errors import PipelineInputError, require

from .plan import check_sweep_dir, plan_table, sweep_dir
from .spec import SweepSpec

MINUS = "\u2212"   # the chapter's table prints a typographic minus


def _num(x: float, nd: int = 3) -> str:
    """Stargazer-like number: 3 decimals, 4 for values that would round to 0.000 (e.g. 0.0002)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    s = f"{x:.{nd}f}"
    if abs(x) > 0 and float(s) == 0.0:
        s = f"{x:.{nd + 1}f}"
    return s.replace("-", MINUS)


_UNITS = ((3600.0, "h", 2), (60.0, "min", 1), (1.0, "s", 1))


def _time_unit(seconds: float) -> tuple[float, str, int]:
    """(seconds per unit, unit, decimals) that show ``seconds`` readably: s below a minute, min below an hour."""
    return next((u for u in _UNITS if abs(seconds) >= u[0]), _UNITS[-1])


def duration(seconds: float) -> str:
    """``2.0 s``, ``3.4 min``, ``1.25 h`` (smoke rows take seconds: "0.0 min" told nothing)."""
    if seconds is None or not math.isfinite(seconds):
        return "NA"
    per, unit, nd = _time_unit(seconds)
    return f"{seconds / per:.{nd}f} {unit}"


def stars(p: float) -> str:
    """``*`` p<0.1, ``**`` p<0.05, ``***`` p<0.01 (the note under Figure 26)."""
    if p is None or not math.isfinite(p):
        return ""
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""


def _analysis_cfg(spec: SweepSpec) -> tuple[dict[str, str], dict[str, dict[str, Any]], str | None]:
    a = spec.analysis
    if a.get("covariates") or a.get("categorical"):
        cov = {str(k): str(v) for k, v in (a.get("covariates") or {}).items()}
        cat = {str(k): {"key": str(v["key"]), "reference": v.get("reference")} for k, v in
               (a.get("categorical") or {}).items()}
        return cov, cat, a.get("group_by")
    cov, cat = {}, {}
    for k, vals in spec.grid.items():
        if len(vals) < 2:
            continue
        label = spec.labels.get(k) or k.rsplit(".", 1)[-1]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            cov[label] = k
        else:
            cat[label] = {"key": k, "reference": vals[0]}
    return cov, cat, a.get("group_by") or next(iter(cat), None)


def results_frame(spec: SweepSpec, root: Path):
    """The merged plan as a pandas DataFrame with typed result columns."""
    import pandas as pd

    df = pd.DataFrame(plan_table(spec, root))
    for c in ("m_mae", "m_mse", "m_ssim", "bench_m_mae", "bench_m_mse", "bench_m_ssim", "train_time_s",
              "eval_time_s", "steps"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["model_failed"] = df["model_failed"].map({"True": 1, "False": 0})
    return df


def design(df, cov: dict[str, str], cat: dict[str, dict[str, Any]]):
    """Regressor matrix: numeric covariates, then dummies ``<name>_<level>`` (reference dropped), then const."""
    import pandas as pd

    cols = {}
    for name, key in cov.items():
        cols[name] = pd.to_numeric(df[key], errors="coerce").astype(float)
    for name, c in cat.items():
        values = df[c["key"]].astype(str)
        ref = str(c["reference"]) if c.get("reference") is not None else sorted(values.unique())[0]
        ref = _cell_str(ref)
        for level in sorted(values.unique()):
            if level != ref:
                cols[f"{name}_{level}"] = (values == level).astype(float)
    X = pd.DataFrame(cols, index=df.index)
    X["Constant"] = 1.0
    return X


def _cell_str(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def fit_ols(y, X) -> dict[str, Any] | None:
    """statsmodels OLS; columns without variation (besides the constant) are dropped and listed."""
    import statsmodels.api as sm

    keep = [c for c in X.columns if c == "Constant" or X[c].nunique() > 1]
    dropped = [c for c in X.columns if c not in keep]
    X = X[keep]
    yv = np.asarray(y, dtype=float)
    if len(yv) <= X.shape[1]:
        return {"n": int(len(yv)), "k": int(X.shape[1]), "dropped": dropped, "fit": None}
    if len(yv) and np.all(yv == yv[0]):
        # nothing to explain (no failures at all, or every model failed): OLS would report the constant
        # as significant with a standard error of 0 and a negative F statistic
        return {"n": int(len(yv)), "k": int(X.shape[1]), "dropped": dropped, "fit": None, "constant": float(yv[0])}
    import warnings

    with warnings.catch_warnings():
        # a perfect fit (residuals 0) makes statsmodels divide by zero; its NaN statistics are reported as NA
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sm.OLS(yv, X.astype(float)).fit()
        _ = (res.rsquared, res.rsquared_adj, res.fvalue, res.f_pvalue)   # evaluate the lazy stats here
    return {"n": int(res.nobs), "k": int(X.shape[1]), "dropped": dropped, "fit": res, "columns": keep}


def not_estimated(m: dict[str, Any] | None) -> str | None:
    """Why a :func:`fit_ols` result has no fit (``None`` when it has one)."""
    if not m or m["n"] == 0:
        return "no observations"
    if m.get("constant") is not None:
        return f"all {m['n']} observations are {m['constant']:g}: no variation to explain"
    if m["fit"] is None:
        obs = "observation" if m["n"] == 1 else "observations"
        return f"{m['n']} {obs} for {m['k']} regressor{'s' * (m['k'] != 1)}"
    return None


def regression_table(models: dict[str, dict[str, Any] | None], order: list[str]) -> list[list[str]]:
    """Figure-26 layout: a row per covariate ``coef*** (se)``, then Observations, R², Adjusted R²,
    Residual Std. Error (df), F Statistic (df = k; n−k−1). A covariate without variation among a
    model's observations reads "dropped (no variation)"; when a model was not estimated, a last row
    "Not estimated" says why (the table, and its PNG, showed empty cells and NA without a reason)."""
    names = list(models)
    rows = [["Covariate", *names]]
    for cov in order:
        cells = []
        for n in names:
            m = models[n]
            if not m or m["fit"] is None:
                cells.append("")
                continue
            if cov not in m["columns"]:
                cells.append("dropped (no variation)" if cov in m["dropped"] else "")
                continue
            r = m["fit"]
            cells.append(f"{_num(r.params[cov])}{stars(r.pvalues[cov])} ({_num(r.bse[cov])})")
        rows.append([cov, *cells])

    def stat(fn):
        return [fn(models[n]) if models[n] and models[n]["fit"] is not None else "NA" for n in names]

    rows.append(["Observations", *[str(models[n]["n"]) if models[n] else "0" for n in names]])
    rows.append(["R²", *stat(lambda m: _num(m["fit"].rsquared))])
    rows.append(["Adjusted R²", *stat(lambda m: _num(m["fit"].rsquared_adj))])
    rows.append(["Residual Std. Error", *stat(
        lambda m: f"{_num(math.sqrt(m['fit'].scale))} (df = {int(m['fit'].df_resid)})")])
    rows.append(["F Statistic", *stat(
        lambda m: f"{_num(m['fit'].fvalue)}{stars(m['fit'].f_pvalue)} "
                  f"(df = {int(m['fit'].df_model)}; {int(m['fit'].df_resid)})")])
    reasons = [not_estimated(models[n]) or "" for n in names]
    if any(reasons):
        rows.append(["Not estimated", *reasons])
    return rows


def _save_fig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def analyse(spec: SweepSpec, out: str | Path | None = None, top: int = 15) -> Path:
    """Write ``analysis/report.md`` (+ PNGs) for the finished rows of a sweep; returns the report path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from evaluation.report import markdown_table

    root = sweep_dir(spec, out)
    hint = f"run rows first: {spec.command('--run', '--all', out=out)}"
    # Reads only: a folder never planned or run is not turned into one by asking for its analysis.
    require((root / "sweep.json").exists(), "no finished rows to analyse (the sweep was never planned or run here)",
            path=root, field="status", hint=hint)
    check_sweep_dir(spec, root)  # results of an edited spec would be read against shifted rows
    df = results_frame(spec, root)
    done = df[df["status"] == "done"].copy()
    if done.empty:
        raise PipelineInputError("no finished rows to analyse", path=root / "plan.csv", field="status", hint=hint)
    adir = root / "analysis"
    cov, cat, group = _analysis_cfg(spec)
    done["model_failed"] = done["model_failed"].fillna(1).astype(int)
    ok = done[done["model_failed"] == 0]
    Xall = design(done, cov, cat)
    models = {"(a) Average SSIM": fit_ols(ok["m_ssim"], Xall.loc[ok.index]),
              "(b) Failed_model": fit_ols(done["model_failed"], Xall)}
    order = [c for c in Xall.columns if c != "Constant"] + ["Constant"]
    table = regression_table(models, order)
    bench = float(np.nanmedian(done["bench_m_ssim"])) if done["bench_m_ssim"].notna().any() else float("nan")

    md = [f"# Sweep `{spec.name}`: analysis", "",
          f"Rows: {len(df)}; finished: {len(done)}; raised: {int((df['status'] == 'failed').sum())}; "
          f"not run: {int((df['status'] == 'not_run').sum())}.", "",
          f"**Failed models** (M-SSIM < 0.5 or M-MAE > 1): {int(done['model_failed'].sum())}/{len(done)} "
          f"= {100 * done['model_failed'].mean():.1f} %. Benchmark M-SSIM (median over rows): {_num(bench)}.", "",
          "## Regressions (Figure 26 layout)", "", markdown_table(table), "",
          "Note: *p<0.1; **p<0.05; ***p<0.01. (a) OLS of M-SSIM on successful models; (b) linear probability "
          "model of failure on all finished models. Reference categories: "
          + (", ".join(f"{k}={v['reference']}" for k, v in cat.items()) or "none") + "."]
    for label, m in models.items():
        reason = not_estimated(m)
        if reason:
            md.append(f"\n{label}: not estimated ({reason}).")
        if reason == "no observations":
            continue
        if m and m["dropped"]:
            md.append(f"\n{label}: dropped (no variation): {', '.join(m['dropped'])}.")

    if group and group in cat:
        gkey = cat[group]["key"]
        md += ["", f"## By {group}", "", f"| {group} | finished | failed | failed % | beat benchmark % |", "|---|---|---|---|---|"]
        levels = list(dict.fromkeys(done[gkey]))
        fig, axes = plt.subplots(1, len(levels), figsize=(4 * len(levels), 3), squeeze=False, sharey=True)
        for ax, level in zip(axes[0], levels):
            sub = done[done[gkey] == level]
            beat = 100 * float((sub["m_ssim"] > bench).mean()) if math.isfinite(bench) else float("nan")
            md.append(f"| {level} | {len(sub)} | {int(sub['model_failed'].sum())} | "
                      f"{100 * sub['model_failed'].mean():.1f} | {beat:.1f} |")
            vals = sub["m_ssim"].to_numpy(dtype=float)
            ax.hist(np.nan_to_num(vals, nan=0.0), bins=20, range=(0, 1), color="tab:blue")
            if math.isfinite(bench):
                ax.axvline(bench, color="k", lw=1.5, label="benchmark")
            ax.axvline(0.5, color="tab:red", ls="--", lw=1, label="failure (0.5)")
            ax.set_title(f"{group} = {level}")
            ax.set_xlabel("M-SSIM")
        axes[0][0].set_ylabel("models")
        axes[0][0].yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][0].legend(fontsize=7)
        _save_fig(fig, adir / f"hist_m_ssim_by_{group}.png")
        md += ["", f"![M-SSIM by {group}](hist_m_ssim_by_{group}.png)"]

    keys = [k for k in spec.grid if k in df.columns]
    best = ok.sort_values("m_ssim", ascending=False).head(top)
    trows = [["rank", "run_name", *[spec.labels.get(k) or k.rsplit(".", 1)[-1] for k in keys], "M-SSIM", "M-MAE",
              "M-MSE", "train time"]]
    for r, (_, row) in enumerate(best.iterrows(), 1):
        trows.append([str(r), row["run_name"], *[str(row[k]) for k in keys], _num(row["m_ssim"]), _num(row["m_mae"]),
                      _num(row["m_mse"], 4), duration(row["train_time_s"])])
    md += ["", f"## Top {top} successful models by M-SSIM", "",
           markdown_table(trows) if len(trows) > 1 else "None: no finished model passed the failure rule."]

    times = done["train_time_s"].dropna().to_numpy(dtype=float)
    median, longest = (float(np.median(times)), float(times.max())) if len(times) else (math.nan, math.nan)
    per, unit, _ = _time_unit(longest if len(times) else 0.0)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(times / per, bins=20, color="tab:gray")
    ax.set_xlabel(f"training time per model [{unit}]")
    ax.set_ylabel("models")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 models
    _save_fig(fig, adir / "runtime_hist.png")
    md += ["", "## Runtime", "", "![runtime](runtime_hist.png)", "",
           f"Training time: median {duration(median)}, max {duration(longest)}, total {duration(float(times.sum()))}."]

    fig, ax = plt.subplots(figsize=(1.9 * len(table[0]) + 1, 0.32 * len(table) + 0.5))
    ax.axis("off")
    ax.table(cellText=table[1:], colLabels=table[0], loc="center", cellLoc="center").auto_set_font_size(True)
    _save_fig(fig, adir / "regressions.png")
    write_text_atomic(adir / "regressions.md", markdown_table(table) + "\n")
    write_text_atomic(adir / "top15.md", markdown_table(trows) + "\n")
    return write_text_atomic(adir / "report.md", "\n".join(md) + "\n")
