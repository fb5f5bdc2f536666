"""What users look at: metric plots over time, contour overlays, temporal QC and sample sheets.

Modules
-------
samples
    Read ``config/samples.tsv`` (position -> condition and free columns) and merge it into
    metrics tables.
qc
    Temporal quality control: area jumps, objects that appear or vanish, objects touching the
    border, frames where the model is unsure; written as a tidy ``qc.csv``.
plots
    Per-position metric plots over time and the experiment-wide comparison figure.
overlay
    Contours drawn on the frames: a montage PNG and an animated GIF per position.
style
    Colours shared by plots and overlays (one colour per object id, QC flag colours).
html
    Small self-contained HTML pages (QC table, GIF viewer, run parameters) for
    ``snakemake --report``.

All figures use matplotlib's Agg backend and are written atomically.
"""

from __future__ import annotations
