"""Small self-contained HTML pages for ``snakemake --report``.

Snakemake's report shows PNG, SVG, PDF and HTML inline but only offers other files (CSV,
GIF, JSON) for download, so the QC table, the animated overlay and the run parameters are
wrapped in single-file HTML pages (images embedded as data URIs, everything escaped).
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

_STYLE = """<style>
body{font-family:system-ui,sans-serif;font-size:14px;margin:1em;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#f0f0f0}tr.flag-uncertain_frame td,tr.flag-area_jump td,tr.flag-blank_frame td{background:#fff3cd}
pre{background:#f6f6f6;padding:8px;overflow:auto}
</style>"""


def _page(title: str, body: str) -> str:
    """A complete HTML document."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>{_STYLE}</head>\n<body>\n"
            f"<h2>{html.escape(title)}</h2>\n{body}\n</body></html>\n")


def qc_page(qc: pd.DataFrame, *, title: str) -> str:
    """HTML page with a summary of flags per position and the full QC table.

    Examples
    --------
    >>> qc = pd.DataFrame({"position": ["p0"], "timepoint": [5], "flag": ["area_jump"]})
    >>> "<td>area_jump</td>" in qc_page(qc, title="QC")
    True
    """
    if qc.empty:
        return _page(title, "<p>No frame or object was flagged.</p>")
    summary = qc.pivot_table(index="position", columns="flag", values="timepoint",
                             aggfunc="count", fill_value=0)
    rows = []
    for _, row in qc.iterrows():
        cells = "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row)
        rows.append(f"<tr class=\"flag-{html.escape(str(row['flag']))}\">{cells}</tr>")
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in qc.columns)
    body = ("<h3>Flags per position</h3>" + summary.to_html(border=0)
            + f"<h3>All flags ({len(qc)})</h3><table><thead><tr>{header}</tr></thead>"
            + "<tbody>" + "\n".join(rows) + "</tbody></table>")
    return _page(title, body)


def gif_page(gif_path: str | os.PathLike[str], *, title: str, note: str = "") -> str:
    """HTML page showing an animated GIF (embedded) with a short note under it.

    Raises
    ------
    ValueError
        If the GIF does not exist.
    """
    path = Path(gif_path)
    if not path.is_file():
        raise ValueError(f"GIF must be an existing file, got {str(path)!r}")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    body = (f"<img alt=\"{html.escape(title)}\" src=\"data:image/gif;base64,{data}\">"
            f"<p>{html.escape(note)}</p>")
    return _page(title, body)


def _table(header: list[str], rows: list[list[object]]) -> str:
    """An HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _score(value: object) -> str:
    """A validation figure with 4 decimals, or a dash."""
    return f"{value:.4f}" if isinstance(value, float) else "-"


def training_section(card: Mapping[str, Any], proposals: list[dict[str, Any]]) -> str:
    """HTML: the frames the model was trained on (and whether each was a corrected proposal) and
    the validation IoU/Dice of the model it started from (before) and of itself (after).

    Examples
    --------
    >>> card = {"training": {"train_names": ["a"], "val_names": ["b"], "init": None}, "metrics": {}}
    >>> "<td>validation</td>" in training_section(card, [{"frame": "b", "score": 0.5, "state": "corrected"}])
    True
    """
    training = card.get("training", {})
    proposed = {row["frame"]: row for row in proposals}
    rows = [[name, use, _score(proposed[name].get("score")) if name in proposed else "-",
             proposed[name]["state"] if name in proposed else "not proposed"]
            for use, key in (("training", "train_names"), ("validation", "val_names"))
            for name in training.get(key, [])]
    before = training.get("init_metrics") or {}
    init = (training.get("init") or {}).get("model", "none (trained from scratch)")
    after = card.get("metrics", {})
    figures = [[f"before: {init}", _score(before.get("val_iou")), _score(before.get("val_dice"))],
               ["after: this model", _score(after.get("val_iou")), _score(after.get("val_dice"))]]
    where = ("On the validation frames above" if training.get("val_names") else
             f"No frame validated: with fewer than {training.get('val_min_pairs', 2)} pairs all train "
             "(<code>training.val_min_pairs</code>)")
    return ("<h3>Annotated frames</h3>" + _table(["frame", "used for", "proposal score", "mask"], rows)
            + "<h3>Validation before and after training</h3>"
            + _table(["model", "validation IoU", "validation Dice"], figures)
            + f"<p>{where}; <i>as proposed</i>: the mask was not changed after "
              "<code>spheroseg propose</code> wrote it.</p>")


def parameters_page(config: Mapping[str, Any], card: Mapping[str, Any] | None, *,
                    title: str, model_path: str = "", proposals: list[dict[str, Any]] | None = None) -> str:
    """HTML page with the run's effective configuration and the model card used.

    Examples
    --------
    >>> "threshold" in parameters_page({"segment": {"threshold": 0.5}}, None, title="Run")
    True
    """
    import yaml

    body = ("<h3>Configuration (after command-line overrides)</h3><pre>"
            + html.escape(yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True))
            + "</pre>")
    if card is None:
        body += "<h3>Model card</h3><p>No model card (no model used).</p>"
    else:
        if "training" in card and "train_names" in card["training"]:
            body += training_section(card, proposals or [])
        body += (f"<h3>Model card of {html.escape(model_path)}</h3><pre>"
                 + html.escape(json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False))
                 + "</pre>")
    return _page(title, body)
