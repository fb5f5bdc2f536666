"""What spheroseg cannot run safely or exactly is refused, with the reason, before anything is written."""

from __future__ import annotations

import numpy as np
import pytest

from zoo_helpers import unpacked
from spheroseg.modelzoo.contract import PackageError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def state_dict_only(rdf):
    rdf["weights"] = {"pytorch_state_dict": {
        "source": "weights.pth", "pytorch_version": "2.4",
        "architecture": {"source": "arch.py", "callable": "Net", "kwargs": {}}}}


def onnx_only(rdf):
    rdf["weights"] = {"onnx": {"source": "weights.onnx", "opset_version": 15}}


def preprocessing(*steps):
    def edit(rdf):
        rdf["inputs"][0]["preprocessing"] = list(steps)
    return edit


def postprocessing(*steps, output_range=None):
    def edit(rdf):
        rdf["outputs"][0]["postprocessing"] = list(steps)
        rdf["outputs"][0]["data"] = {"type": "float32", "range": output_range or [None, None]}
    return edit


def add_axis(rdf):
    rdf["inputs"][0]["axes"].insert(2, {"type": "space", "id": "z", "size": {"min": 8, "step": 8}})


def two_channels(rdf):
    rdf["inputs"][0]["axes"][1]["channel_names"] = ["a", "b"]


def fixed_size(rdf):
    for axis in rdf["inputs"][0]["axes"][2:]:
        axis["size"] = 256


def odd_minimum(rdf):
    for axis in rdf["inputs"][0]["axes"][2:]:
        axis["size"] = {"min": 20, "step": 8}


def two_inputs(rdf):
    second = {**rdf["inputs"][0], "id": "mask"}
    second.pop("test_tensor")
    rdf["inputs"].append(second)


def remote_weights(rdf):
    rdf["weights"]["torchscript"]["source"] = "https://example.org/weights.pt"
    rdf["weights"]["torchscript"].pop("sha256")


def two_output_channels(rdf):
    rdf["outputs"][0]["axes"][1]["channel_names"] = ["fg", "bg"]


SCALE_RANGE = {"id": "scale_range", "kwargs": {"axes": ["channel", "y", "x"], "min_percentile": 1, "max_percentile": 99}}
CASES = {
    "state-dict": (state_dict_only, r"pytorch_state_dict weights are pickled and unpickling them can run arbitrary code"),
    "onnx": (onnx_only, r"weights must include torchscript .*got \['onnx'\]"),
    "clip": (preprocessing(SCALE_RANGE, {"id": "clip", "kwargs": {"min": 0, "max": 1}}),
             r"preprocessing must be at most one of scale_range .*got \['scale_range', 'clip'\]"),
    "fixed-zmuv": (preprocessing({"id": "fixed_zero_mean_unit_variance", "kwargs": {"mean": 1, "std": 2}}),
                   r"got \['fixed_zero_mean_unit_variance'\]"),
    "scale-linear": (preprocessing({"id": "scale_linear", "kwargs": {"gain": 2.0}}), r"got \['scale_linear'\]"),
    "per-channel": (lambda rdf: (two_channels(rdf), preprocessing({**SCALE_RANGE, "kwargs": {"axes": ["y", "x"]}})(rdf)),
                    r"scale_range axes must pool channel, y and x .*got \['y', 'x'\]"),
    "large-eps": (preprocessing({"id": "zero_mean_unit_variance", "kwargs": {"eps": 0.01}}), r"eps must be <= 1e-06 .*got 0.01"),
    "uint8-model": (preprocessing({"id": "ensure_dtype", "kwargs": {"dtype": "uint8"}}),
                    r"the model must receive float32 after preprocessing .*got 'uint8'"),
    "binarize": (postprocessing({"id": "binarize", "kwargs": {"threshold": 0.5}}),
                 r"postprocessing must be sigmoid or nothing .*got \['binarize'\]"),
    "raw-scores": (postprocessing(), r"must declare its data range within \[0, 1\] .*got \(None, None\)"),
    "3-d": (add_axis, r"input axes must be \(batch, channel, y, x\).*got \['batch', 'channel', 'z', 'y', 'x'\]"),
    "fixed-size": (fixed_size, r"input y and x sizes must both be the same parameterized size .*got \[256, 256\]"),
    "odd-minimum": (odd_minimum, r"input size min must be a multiple of its step 8 .*got 20"),
    "two-inputs": (two_inputs, r"model must have one input and one output, got \(2, 1\)"),
    "two-outputs": (two_output_channels, r"output must have exactly one channel .*got \['fg', 'bg'\]"),
    "remote-weights": (remote_weights, r"weights.torchscript.source must be a file inside the package .*example.org"),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=sorted(CASES))
def test_unsupported_package_is_refused_with_the_reason(case, tiny_package, tmp_path, offline):
    from spheroseg.modelzoo.importer import check_package, import_bioimageio

    edit, message = CASES[case]
    rdf = unpacked(tiny_package, tmp_path / "package", edit)
    (rdf.parent / "weights.pth").write_bytes(b"not a pickle: never opened")  # proves nothing unpickles it
    (rdf.parent / "arch.py").write_text("raise SystemExit('never imported')\n")
    (rdf.parent / "weights.onnx").write_bytes(b"")
    with pytest.raises(PackageError, match=message) as error:
        check_package(rdf)
    assert str(rdf) in str(error.value)
    with pytest.raises(PackageError, match=message):
        import_bioimageio(rdf, tmp_path / "out" / "m.pt")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert offline == []


@pytest.mark.parametrize(("change", "message"), [
    ("weights", r"weights.torchscript.source SHA-256 must be [0-9a-f]{64} as the description says"),
    ("test-output", r"must match its test output within the package's tolerance, got \d+ of \d+ values beyond it"),
    ("pickled-test-input", r"inputs\[0\].test_tensor must be a .npy array without pickled objects"),
], ids=["tampered-weights", "unreproduced-test-output", "pickled-test-tensor"])
def test_package_whose_files_do_not_hold_is_refused(change, message, tiny_package, tmp_path):
    from spheroseg.modelzoo.importer import import_bioimageio

    def drop_test_digests(rdf):
        rdf["inputs"][0]["test_tensor"].pop("sha256")
        rdf["outputs"][0]["test_tensor"].pop("sha256")

    rdf = unpacked(tiny_package, tmp_path / "package", drop_test_digests)
    folder = rdf.parent
    if change == "weights":
        with open(folder / "tiny.pt", "ab") as handle:
            handle.write(b"\0")
    elif change == "test-output":
        np.save(folder / "test_output.npy", 1.0 - np.load(folder / "test_output.npy"))
    else:
        np.save(folder / "test_input.npy", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(PackageError, match=message):
        import_bioimageio(rdf, tmp_path / "out" / "m.pt")
    assert not (tmp_path / "out" / "m.pt").exists()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("model.zip", b"not a zip", r"model package must be a valid bioimage.io model description"),
    ("rdf.yaml", b"type: dataset\nname: x\n", r"model package must be a valid bioimage.io model description"),
    ("model.pt", b"", r"model package must be a .zip, rdf.yaml or \*.bioimageio.yaml, got"),
    ("rdf.yaml", b"not: [valid", r"model package must be a YAML model description, got a file that does not "
                                 r"parse: .* \(in .*rdf.yaml\)"),
    ("rdf.yaml", b"name: \xe9t\xe9\n", r"YAML model description, got a file that does not parse: .*utf-8"),
], ids=["not-a-zip", "not-a-model", "not-a-package", "not-yaml", "not-utf8"])
def test_files_that_are_not_model_packages_are_refused(name, content, message, tmp_path, bioimageio_core):
    from spheroseg.modelzoo.importer import check_package

    (tmp_path / name).write_bytes(content)
    with pytest.raises(PackageError, match=message):
        check_package(tmp_path / name)
