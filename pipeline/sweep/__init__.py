"""Grid searches ("sweeps"): a base experiment plus a Cartesian product of config overrides.

* :mod:`.spec`     loads ``configs/sweep/*.yaml`` and expands it into rows (stable run names).
* :mod:`.plan`     the plan CSV, per-row result JSON files, splitting into parts (D7 fixed).
* :mod:`.runner`   trains + evaluates rows; exception capture, skip finished, warm start.
* :mod:`.slurm`    sbatch scripts (job array, single train, multi-GPU DDP) and submitit.
* :mod:`.analysis` Figure-26 regressions, histograms, top-15 table, runtime histogram.

The chapter's grid runners (GridMRI ``Gridit``, DnCNN_Hyper_Params ``make_grid``/``run_grid``,
reference §7.2) are the model; their defects D4-D7 (§7.5) are not copied.
"""
