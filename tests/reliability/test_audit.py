"""Audit of the package source: every output goes through spheroseg.atomic, and no code path
unpickles a user file (only torch.jit.load for models, torch.load(weights_only=True) for
checkpoints). Static AST scans, plus a proof that a crafted model file cannot run code."""

from __future__ import annotations

import ast
import json
import pickle
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from snakefile_runner import SPHEROSEG

# torch.jit is deprecated in torch >= 2.13 but is the model format spheroseg ships.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
SOURCE = Path(__file__).resolve().parents[2] / "src" / "spheroseg"

# Calls that write a file or a store (method or function name).
WRITERS = {"write_text", "write_bytes", "savefig", "imwrite", "imsave", "save", "savez", "savez_compressed",
           "dump", "create_array", "create_group"}
TABLE_WRITERS = {"to_csv", "to_parquet", "to_json"}  # write only when given a path
FILE_COPIES = {"copyfile", "copy", "copy2", "copytree", "move"}  # shutil's
# Helpers that write into a path their caller made with atomic_path (the caller is checked).
WRITE_INTO_TEMPORARY = {
    "create_image": "ngff: creates a store where the caller says (inside the caller's atomic_path)",
    "create_levels": "ngff: adds pyramid levels to the store being written",
    "write_frame": "ngff: fills a frame of the store being written",
    "_write_chunks": "ngff: fills chunks of the store being written",
    "_write_file": "ngff: writes one encoded chunk of the store being written",
    "create_tile_store": "inference: creates the tile store in predict's temporary folder",
    "_record_segmentation": "segmentation: records attributes in the temporary label store",
    "_write_frame": "ingest: writes a frame and its pyramid levels into the temporary store",
    "write_pyramid": "ngff: fills the pyramid levels of the store being written",
    "_write_files": "modelzoo: stages a package in a private folder inside export's atomic_path block",
    "update_attributes": "ngff: adds group attributes to the store being written",
    "write_channels": "ngff: adds the omero channels to the store being written",
    "seal_arrays": "zarrio: records the chunk file counts in the store being written, last in its atomic_path block",
}
# Deserialisers that can run code from the file they read.
UNSAFE = {("pickle", "load"), ("pickle", "loads"), ("dill", "load"), ("joblib", "load"), ("pd", "read_pickle"),
          ("pandas", "read_pickle"), ("shelve", "open"), ("marshal", "load"), ("marshal", "loads"),
          ("yaml", "unsafe_load"), ("yaml", "full_load"), ("export", "load"), ("torch.export", "load")}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SOURCE.rglob("*.py")):
        yield path.relative_to(SOURCE.parent).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def _name(node: ast.AST) -> tuple[str, str]:
    """(owner, attribute) of a call's function: ``torch.load`` -> ("torch", "load")."""
    if isinstance(node, ast.Name):
        return "", node.id
    if isinstance(node, ast.Attribute):
        return ast.unparse(node.value), node.attr
    return "", ""


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def _is_write(call: ast.Call) -> bool:
    owner, name = _name(call.func)
    if name == "open" and owner in ("", "io", "builtins"):
        mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
        return isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
    if name in ("open_group", "open_array", "open") and owner in ("zarr",):
        return _keyword(call, "mode") in ("w", "w-", "a", "r+")
    if name in ("write_text", "write_bytes") and owner == "":
        return False  # spheroseg.atomic.write_text / write_bytes
    if name == "dump" and owner not in ("json", "yaml", "pickle"):
        return False
    if name in TABLE_WRITERS:
        return bool(call.args) or any(k.arg == "path_or_buf" for k in call.keywords)
    if name in FILE_COPIES:
        return owner == "shutil"
    return name in WRITERS or name in WRITE_INTO_TEMPORARY


def _calls_outside_atomic(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    """(enclosing function, call) for each write call not inside ``with atomic_path(...)``."""
    def visit(node: ast.AST, function: str, atomic: bool) -> Iterator[tuple[str, ast.Call]]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function, atomic = node.name, False
        if isinstance(node, (ast.With, ast.AsyncWith)) and any(
                isinstance(item.context_expr, ast.Call) and _name(item.context_expr.func)[1] == "atomic_path"
                for item in node.items):
            atomic = True
        if isinstance(node, ast.Call) and not atomic and _is_write(node):
            yield function, node
        for child in ast.iter_child_nodes(node):
            yield from visit(child, function, atomic)
    yield from visit(tree, "<module>", False)


def find_non_atomic_writes() -> list[str]:
    """``file:line function: call`` for every write outside atomic_path and outside the
    helpers that write into their caller's temporary output."""
    found = []
    for path, tree in _modules():
        if path == "spheroseg/atomic.py":
            continue
        for function, call in _calls_outside_atomic(tree):
            if function in WRITE_INTO_TEMPORARY:
                continue
            found.append(f"{path}:{call.lineno} {function}: {ast.unparse(call)[:80]}")
    return found


def find_unsafe_loads() -> list[str]:
    """``file:line: call`` for every deserialisation that may unpickle a user file."""
    found = []
    for path, tree in _modules():
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            owner, name = _name(call.func)
            unsafe = (owner, name) in UNSAFE or (owner.endswith("export") and name == "load")
            unsafe |= owner == "torch" and name == "load" and _keyword(call, "weights_only") is not True
            unsafe |= owner in ("np", "numpy") and name == "load" and _keyword(call, "allow_pickle") is True
            unsafe |= owner == "yaml" and name == "load" and "Safe" not in ast.unparse(call)
            unsafe |= owner == "" and name in ("eval", "exec")
            if unsafe:
                found.append(f"{path}:{call.lineno}: {ast.unparse(call)[:80]}")
    return found


def test_every_output_is_written_through_spheroseg_atomic():
    assert find_non_atomic_writes() == []


def test_no_code_path_unpickles_a_user_file():
    assert find_unsafe_loads() == []


@pytest.mark.parametrize(("snippet", "expected"), [
    pytest.param("def f(p):\n    p.write_text('x')\n", 1, id="path-write_text"),
    pytest.param("def f(p):\n    with open(p, 'w') as h:\n        h.write('x')\n", 1, id="open-w"),
    pytest.param("def f(p):\n    with atomic_path(p) as t:\n        t.write_text('x')\n", 0, id="inside-atomic"),
    pytest.param("def f(p):\n    write_text(p, 'x')\n", 0, id="atomic-write_text"),
    pytest.param("def f(p):\n    with open(p) as h:\n        return h.read()\n", 0, id="open-read"),
    pytest.param("def f(g):\n    g.create_array('0', shape=(1,))\n", 1, id="zarr-create_array"),
])
def test_write_scan_knows_a_write_when_it_sees_one(snippet, expected):
    assert len(list(_calls_outside_atomic(ast.parse(snippet)))) == expected


class _RunsCode:
    """Unpickling this creates `marker`: proof that a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _rewrite_zip(source: Path, target: Path, change) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info.filename)))


def _hostile_model(kind: str, path: Path, marker: Path) -> None:
    """A model archive of `kind` whose pickled payload creates `marker` when unpickled."""
    import torch

    from spheroseg.unet import UNet

    net = UNet(depth=1, base_width=2).eval()
    clean = path.with_name(f"clean{path.suffix}")
    payload = pickle.dumps(_RunsCode(marker), protocol=2)
    if kind == "torchscript":
        torch.jit.script(net).save(str(clean))
        _rewrite_zip(clean, path, lambda name, data: payload if name.endswith("/data.pkl") else data)
        return
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 16, 16),)), str(clean))

    def change(name: str, data: bytes) -> bytes:
        if name.endswith("data/weights/model_weights_config.json"):
            config = json.loads(data)
            next(iter(config["config"].values()))["use_pickle"] = True
            return json.dumps(config).encode()
        return payload if name.endswith("data/weights/weight_0") else data
    _rewrite_zip(clean, path, change)


@pytest.mark.parametrize(("kind", "suffix"), [
    pytest.param("torchscript", ".pt", id="torchscript"),
    pytest.param("exported-program", ".pt2", id="exported-program"),
])
def test_predict_never_runs_code_from_a_model_file(tmp_path, kind, suffix):
    # The card's SHA-256 proves the file is the one the card describes, not that it is
    # harmless: whoever shares a model writes its card too. So loading must not unpickle.
    from spheroseg import ngff
    from spheroseg.atomic import atomic_path
    from spheroseg.inference import plan_for_image
    from spheroseg.modelcard import write_card
    from spheroseg.tiling import write_plan

    if shutil.which(SPHEROSEG) is None:
        pytest.skip("the spheroseg command is not installed next to this Python")
    model, marker = tmp_path / f"shared model{suffix}", tmp_path / "code-ran"
    _hostile_model(kind, model, marker)
    write_card({"input": {"channels": 1, "normalization": {"kind": "none"}}, "spatial_divisor": 2,
                "output": {"kind": "logits", "channels": 1}}, model)
    image = tmp_path / "image.ome.zarr"
    with atomic_path(image, directory=True) as tmp:
        ngff.create_image(tmp, shape=(1, 32, 32), dtype="uint8", axes="tyx", pixel_size_um=None,
                          time_interval_s=None)
    plan = tmp_path / "tiles.json"
    write_plan(plan_for_image(image, model, tile_size=32), plan)
    result = subprocess.run([SPHEROSEG, "predict", "--image", str(image), "--plan", str(plan), "--model", str(model),
                             "--device", "cpu", "--output", str(tmp_path / "tiles.zarr")],
                            capture_output=True, text=True, timeout=300)
    assert not marker.exists(), f"loading {model.name} ran code embedded in it"
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "tiles.zarr").exists()
