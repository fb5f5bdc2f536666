"""Sample sheets: reading, checks with clear errors, and merging into metrics tables."""

from __future__ import annotations

import pandas as pd
import pytest

from spheroseg.report.samples import merge_samples, read_samples


def _sheet(tmp_path, text: str):
    path = tmp_path / "samples.tsv"
    path.write_text(text, encoding="utf-8")
    return path


def test_read_samples_keeps_text_and_order(tmp_path):
    path = _sheet(tmp_path, "position\tcondition\tdose_uM\nB2\tCHIR\t03\nA1\tcontrol\t0\n")
    table = read_samples(path)
    assert table.to_dict("list") == {"position": ["B2", "A1"], "condition": ["CHIR", "control"],
                                     "dose_uM": ["03", "0"]}


def test_read_samples_strips_spaces_and_skips_blank_lines(tmp_path):
    path = _sheet(tmp_path, "position \tcondition\r\n\n pos0\tctrl \r\n")
    assert read_samples(path).to_dict("list") == {"position": ["pos0"], "condition": ["ctrl"]}


@pytest.mark.parametrize(("text", "match"), [
    ("", "must have a header row"),
    ("position\tgroup\np0\tx\n", r"must include \['position', 'condition'\]"),
    ("position,condition\np0,x\n", r"must include \['position', 'condition'\]"),
    ("position\tcondition\t\np0\tx\t1\n", "must not be empty, got an empty name in column 3"),
    ("position\tcondition\tdose\tdose\np0\tx\t1\t2\n", r"must be unique, got \['dose'\]"),
    ("position\tcondition\ttimepoint\np0\tx\t1\n", r"must not redefine .*\['timepoint'\]"),
    ("position\tcondition\np0\tx\t1\n", "row 2 must have 2 tab-separated fields"),
    ("position\tcondition\np0\t \n", "condition must not be empty, got an empty value in row 2"),
    ("position\tcondition\n\tx\n", "position must not be empty"),
    ("position\tcondition\np0\tx\np0\ty\n", "'p0' more than once"),
], ids=["empty", "no-condition", "commas", "blank-name", "duplicate-column", "reserved",
        "ragged", "empty-condition", "empty-position", "duplicate-position"])
def test_read_samples_errors(tmp_path, text, match):
    path = _sheet(tmp_path, text)
    with pytest.raises(ValueError, match=match) as caught:
        read_samples(path)
    assert str(caught.value).endswith(f"(config key 'samples', in {path})")


@pytest.mark.parametrize(("name", "match"), [
    ("nope.tsv", r"must be an existing file, got no such file '.*nope.tsv' \(config key 'samples'\)"),
    (".", r"must be an existing file, got a folder '.*' \(config key 'samples'\)"),
], ids=["missing", "folder"])
def test_read_samples_missing_file(tmp_path, name, match):
    with pytest.raises(ValueError, match=match):
        read_samples(tmp_path / name)


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_read_samples_accepts_a_byte_order_mark(tmp_path, newline):
    path = tmp_path / "samples.tsv"
    path.write_bytes(f"\ufeffposition\tcondition{newline}A\tctl{newline}".encode())
    assert read_samples(path).to_dict("list") == {"position": ["A"], "condition": ["ctl"]}


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"], ids=["latin-1", "utf-16"])
def test_read_samples_names_file_and_key_for_other_encodings(tmp_path, encoding):
    path = tmp_path / "samples.tsv"
    path.write_bytes("position\tcondition\nA\tcontr\u00f4le\n".encode(encoding))
    with pytest.raises(ValueError, match=r"sample sheet must be UTF-8 text .*got bytes that are "
                       r"not \(.* at byte \d+\) \(config key 'samples', in .*samples.tsv\)"):
        read_samples(path)


SAMPLES = pd.DataFrame({"position": ["p0", "p1"], "condition": ["ctrl", "drug"],
                        "replicate": ["1", "2"]})


def test_merge_inserts_after_position_and_keeps_rows():
    metrics = pd.DataFrame({"experiment": ["e"] * 3, "position": ["p1", "p0", "p1"],
                            "timepoint": [0, 0, 1], "area_um2": [1.0, 2.0, 3.0]})
    merged = merge_samples(metrics, SAMPLES)
    assert list(merged.columns) == ["experiment", "position", "condition", "replicate",
                                    "timepoint", "area_um2"]
    assert merged["condition"].tolist() == ["drug", "ctrl", "drug"]
    assert merged["replicate"].tolist() == ["2", "1", "2"]
    pd.testing.assert_frame_equal(merged[metrics.columns], metrics)


def test_merge_ignores_sheet_positions_without_metrics():
    merged = merge_samples(pd.DataFrame({"position": ["p0"]}), SAMPLES)
    assert merged["condition"].tolist() == ["ctrl"]


@pytest.mark.parametrize(("metrics", "match"), [
    (pd.DataFrame({"well": ["p0"]}), "must have a 'position' column"),
    (pd.DataFrame({"position": ["p0", "p9"]}), r"must be in the sample sheet, got \['p9'\] missing \(in s.tsv\)"),
    (pd.DataFrame({"position": ["p0"], "condition": ["x"]}), r"must not already be in the metrics, got \['condition'\]"),
], ids=["no-position", "unknown-position", "clash"])
def test_merge_errors(metrics, match):
    with pytest.raises(ValueError, match=match):
        merge_samples(metrics, SAMPLES, source="s.tsv")
