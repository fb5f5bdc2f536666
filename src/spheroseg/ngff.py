"""OME-Zarr (NGFF 0.5, Zarr v3) images: create, describe, open and read frames.

Every stage reads and writes its images through this module, so the layout is fixed here:
one Zarr v3 group per image whose ``ome`` attribute holds NGFF 0.5 ``multiscales`` metadata,
level 0 in the array ``"0"`` (raw dtype and values), optional downsampled levels ``"1"``,
``"2"``, ... for viewing, and label images nested under it in ``labels/<name>`` (listed
by the NGFF ``labels`` group, so that viewers open the image with its labels). Axes are a
string in NGFF order, a subsequence of ``"tczyx"`` that ends in ``"yx"``. Physical sizes
live in the ``scale`` transformation of each level together with the axis units
(``micrometer``, ``second``); an unknown size has no unit and scale 1. The metadata is
built and read through ``ome_zarr_models`` (pydantic models of the NGFF spec), so what is
written is checked against the spec and what is read is validated; the pixels go through a
direct chunk writer (`write_frame`) for speed.

Why one module: it is the one place that knows the on-disk format. The writer
(`create_image`, `write_frame`, the pyramid) and the reader (`read_metadata`, `open_array`,
`read_frame`) must agree on every attribute, axis and unit, and share the tables that say so;
split apart, a change to one side could silently stop matching the other.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import zarr

    from spheroseg.zarrio import FrameReader

NGFF_VERSION = "0.5"
AXIS_ORDER = "tczyx"
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
MAX_TILE = 2048
# Chunk files sit side by side ("c.T.C.Y.X") instead of in nested folders ("c/T/C/Y/X"):
# the Zarr v3 default encoding with its "." separator. Nested folders cost a dozen mkdir
# calls per frame (as much as compressing it); every Zarr v3 reader supports both.
CHUNK_KEY_ENCODING = {"name": "default", "separator": "."}
# Factor from a unit to micrometres / seconds; the NGFF spec allows these UDUNITS-2 names.
SPACE_UNITS_UM = {
    "angstrom": 1e-4, "nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3,
    "centimeter": 1e4, "meter": 1e6,
}
TIME_UNITS_S = {
    "nanosecond": 1e-9, "microsecond": 1e-6, "millisecond": 1e-3, "second": 1.0,
    "minute": 60.0, "hour": 3600.0, "day": 86400.0,
}
# Label images of an image live in IMAGE/labels/<name> (the NGFF "labels" group).
LABELS_GROUP = "labels"


@dataclass(frozen=True)
class ImageMetadata:
    """What a stage needs to know about an NGFF image.

    Attributes
    ----------
    axes : str
        Axis names in storage order, for example ``"tcyx"``.
    shape : tuple of int
        Shape of level 0, one entry per axis.
    dtype : numpy.dtype
        Data type of level 0.
    pixel_size_um : float or None
        Pixel size in y and x in micrometres; None if unknown.
    time_interval_s : float or None
        Time between frames in seconds; None if unknown (or no t axis).
    name : str or None
        Image name from the multiscales metadata.
    z_step_um : float or None
        Spacing between z planes in micrometres; None if unknown (or no z axis).
    """

    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    pixel_size_um: float | None
    time_interval_s: float | None
    name: str | None
    z_step_um: float | None = None


def validate_axes(axes: str) -> str:
    """Return `axes` if it is a valid NGFF axis string, else raise.

    Parameters
    ----------
    axes : str
        Axis names, a subsequence of ``"tczyx"`` ending in ``"yx"``.

    Returns
    -------
    str
        The same string.

    Raises
    ------
    TypeError
        If `axes` is not a string.
    ValueError
        If the axes are repeated, unknown, out of order or lack y and x.

    Examples
    --------
    >>> validate_axes("tcyx")
    'tcyx'
    """
    if not isinstance(axes, str):
        raise TypeError(f"axes must be a string such as 'tcyx', got {axes!r}")
    positions = [AXIS_ORDER.find(name) for name in axes]
    ordered = all(a < b for a, b in zip(positions, positions[1:]))
    if -1 in positions or not ordered or not axes.endswith("yx"):
        raise ValueError(
            f"axes must be a subsequence of 'tczyx' ending in 'yx', got {axes!r}"
        )
    return axes


def default_chunks(shape: Sequence[int], *, axes: str, tile: int = MAX_TILE) -> tuple[int, ...]:
    """Chunk shape for an image: one per t, c and z, up to `tile` x `tile` in y and x.

    2048-px chunks make a frame of up to 2048 x 2048 one file, taken straight from the
    frame without copying it into tiles. Creating a file costs about as much as writing
    1 MB, and much more where ext4 skips many recently deleted inodes; one file per frame
    instead of four cut ingest's CPU time by about 10 % on 200 x 2048^2 frames, same
    stored size (``benchmarks/ingest_results.md``). A viewer loads 8 MB (uint16) pieces at
    full resolution and the pyramid's smaller levels when zoomed out.

    Examples
    --------
    >>> default_chunks((10, 2, 700, 2100), axes="tcyx")
    (1, 1, 700, 2048)
    """
    return tuple(
        max(1, min(int(size), tile)) if name in "yx" else 1 for name, size in zip(axes, shape)
    )


def _positive_or_none(name: str, value: float | None) -> float | None:
    """Check an optional physical size is a finite positive number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number or None, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0 or None, got {value!r}")
    return float(value)


def _axes_models(
    axes: str, *, pixel_size_um: float | None, time_interval_s: float | None,
    z_step_um: float | None,
) -> list[Any]:
    """NGFF axes (``ome_zarr_models`` ``Axis``); units only where the physical size is known."""
    from ome_zarr_models.v05.axes import Axis

    units = {
        "t": "second" if time_interval_s is not None else None,
        "z": "micrometer" if z_step_um is not None else None,
        "y": "micrometer" if pixel_size_um is not None else None,
        "x": "micrometer" if pixel_size_um is not None else None,
    }
    return [Axis(name=name, type=AXIS_TYPES[name], unit=units.get(name)) for name in axes]


def _base_scale(
    axes: str, *, pixel_size_um: float | None, time_interval_s: float | None,
    z_step_um: float | None,
) -> list[float]:
    """Level-0 scale per axis (1 where unknown)."""
    sizes = {"t": time_interval_s, "c": None, "z": z_step_um, "y": pixel_size_um,
             "x": pixel_size_um}
    return [float(sizes[name]) if sizes[name] is not None else 1.0 for name in axes]


def _image_attributes(axes: Sequence[Any], scales: list[list[float]], name: Any) -> dict[str, Any]:
    """The ``ome`` attribute of an NGFF 0.5 image whose levels have `scales`, built and
    checked by ``ome_zarr_models`` (its pydantic models of the spec)."""
    from ome_zarr_models.v05.image import ImageAttrs
    from ome_zarr_models.v05.multiscales import Dataset, Multiscale

    datasets = tuple(Dataset.build(path=str(level), scale=scale, translation=None)
                     for level, scale in enumerate(scales))
    multiscale = Multiscale(axes=tuple(axes), datasets=datasets, name=name)
    return _dump(ImageAttrs(multiscales=[multiscale], version=NGFF_VERSION))


def _dump(model: Any) -> dict[str, Any]:
    """JSON form of an ``ome_zarr_models`` model, spec key names, absent fields left out."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def default_compressor() -> Any:
    """Blosc LZ4 with byte shuffle.

    On noisy 16-bit microscopy it stores 1 % more than bit-shuffle but encodes 2.5x and
    decodes 2x faster; on float16 probabilities and int32 labels it is both smaller and
    faster (``benchmarks/ingest_results.md``).
    """
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def _check_new_store(path: Path) -> None:
    """Refuse to overwrite anything but an empty directory."""
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        raise ValueError(
            f"path must not exist yet (create_image never overwrites), got {str(path)!r}"
        )


def create_image(
    path: str | os.PathLike[str], *, shape: Sequence[int], dtype: Any, axes: str,
    pixel_size_um: float | None, time_interval_s: float | None,
    chunks: tuple[int, ...] | None = None, name: str | None = None,
    z_step_um: float | None = None,
) -> zarr.Array:
    """Create a new NGFF image at `path` and return its level-0 array to fill.

    Parameters
    ----------
    path : str or PathLike
        Where the store goes; must not exist (or be an empty directory). Wrap the call in
        ``spheroseg.atomic.atomic_path(out)`` so that a failed write leaves nothing behind.
    shape : sequence of int
        Shape of the image, one entry per axis.
    dtype : numpy dtype-like
        Stored data type (the raw dtype; nothing is rescaled; stored little-endian).
    axes : str
        Axis names, a subsequence of ``"tczyx"`` ending in ``"yx"``.
    pixel_size_um, time_interval_s : float or None
        Pixel size in y/x (micrometres) and frame interval (seconds); None if unknown,
        in which case the axis gets no unit and scale 1.
    chunks : tuple of int, optional
        Chunk shape; by default one per t, c and z and up to 2048 x 2048 in y and x.
    name : str, optional
        Image name stored in the multiscales metadata.
    z_step_um : float, optional
        Spacing of z planes in micrometres.

    Returns
    -------
    zarr.Array
        The writable level-0 array of the given shape and dtype, filled with zeros.

    Raises
    ------
    ValueError
        If axes, shape, chunks or physical sizes are invalid, or `path` already holds data.
    TypeError
        If a physical size is not a number.
    """
    import zarr

    axes = validate_axes(axes)
    shape = tuple(int(size) for size in shape)
    if len(shape) != len(axes) or min(shape, default=0) < 1:
        raise ValueError(f"shape must have one entry >= 1 per axis {axes!r}, got {shape!r}")
    chunks = default_chunks(shape, axes=axes) if chunks is None else tuple(chunks)
    if len(chunks) != len(axes) or min(chunks) < 1:
        raise ValueError(f"chunks must have one entry >= 1 per axis {axes!r}, got {chunks!r}")
    sizes = {
        "pixel_size_um": _positive_or_none("pixel_size_um", pixel_size_um),
        "time_interval_s": _positive_or_none("time_interval_s", time_interval_s),
        "z_step_um": _positive_or_none("z_step_um", z_step_um),
    }
    path = Path(path)
    _check_new_store(path)
    ome = _image_attributes(_axes_models(axes, **sizes), [_base_scale(axes, **sizes)], name)
    group = zarr.open_group(store=str(path), mode="w", zarr_format=3, attributes={"ome": ome})
    return group.create_array(
        "0", shape=shape, dtype=np.dtype(dtype).newbyteorder("<"), chunks=chunks,
        compressors=[default_compressor()], fill_value=0, dimension_names=list(axes),
        chunk_key_encoding=CHUNK_KEY_ENCODING,
    )


def _read_group_attrs(path: Path) -> dict[str, Any]:
    """Attributes of the Zarr group at `path` (v3 or v2), or raise ValueError."""
    v3 = path / "zarr.json"
    if v3.is_file():
        try:
            document = json.loads(v3.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(
                f"zarr.json must be valid JSON, got an unreadable file (in {path})"
            ) from err
        if isinstance(document, dict) and document.get("node_type") == "group":
            attributes = document.get("attributes", {})
            return attributes if isinstance(attributes, dict) else {}
    elif (path / ".zattrs").is_file():
        try:
            attributes = json.loads((path / ".zattrs").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(
                f".zattrs must be valid JSON, got an unreadable file (in {path})"
            ) from err
        return attributes if isinstance(attributes, dict) else {}
    raise ValueError(
        f"path must be an NGFF image (an OME-Zarr group), got no Zarr group metadata "
        f"(in {path})"
    )


def read_attributes(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All attributes of the Zarr group of an NGFF image (``ome`` and any others).

    Raises
    ------
    ValueError
        If `path` is not a Zarr group with readable metadata.
    """
    return _read_group_attrs(Path(path))


def update_attributes(path: str | os.PathLike[str], attributes: dict[str, Any]) -> None:
    """Add top-level attributes (beside ``ome``) to the Zarr group of an NGFF image.

    Call it inside the ``atomic_path`` block that writes the image.
    """
    import zarr

    if "ome" in attributes:
        raise ValueError(f"attributes must not replace 'ome', got {sorted(attributes)!r}")
    zarr.open_group(store=str(path), mode="r+").attrs.update(attributes)


def label_path(image: str | os.PathLike[str], name: str) -> Path:
    """Where the label image `name` of an NGFF image lives: ``IMAGE/labels/NAME``.

    Examples
    --------
    >>> label_path("pos0/image.ome.zarr", "segmentation").as_posix()
    'pos0/image.ome.zarr/labels/segmentation'
    """
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"label name must be a non-empty folder name, got {name!r}")
    return Path(image) / LABELS_GROUP / name


def image_label_metadata() -> dict[str, Any]:
    """The ``image-label`` attribute of a label image nested under its image
    (``IMAGE/labels/NAME``): its source image is two levels up."""
    from ome_zarr_models.v05.image_label_types import Label, Source

    return _dump(Label(source=Source(image="../../")))


def list_labels(image: str | os.PathLike[str]) -> list[str]:
    """Names of the label images listed in the labels group of an NGFF image (may be empty).

    Raises
    ------
    ValueError
        If the labels group exists but its metadata does not follow NGFF.
    """
    from pydantic import ValidationError
    from ome_zarr_models.v05.labels import LabelsAttrs

    group = Path(image) / LABELS_GROUP
    if not (group / "zarr.json").is_file():
        return []
    try:
        return list(LabelsAttrs.model_validate(_read_group_attrs(group).get("ome")).labels)
    except ValidationError as err:
        raise ValueError(f"labels group must list its label images as NGFF {NGFF_VERSION}, "
                         f"got {err.errors()[0]['msg']} (in {group})") from err


def register_label(image: str | os.PathLike[str], name: str) -> None:
    """List the label image ``IMAGE/labels/NAME`` in the image's NGFF labels group.

    The labels group's ``zarr.json`` is created or rewritten atomically, after the label
    image is complete, so a reader never finds a listed label that is not there. Names
    whose label image no longer exists are dropped.

    Raises
    ------
    ValueError
        If `image` is not an NGFF image or ``IMAGE/labels/NAME`` is not an NGFF image.
    """
    from ome_zarr_models.v05.labels import LabelsAttrs

    from spheroseg.atomic import write_text

    _read_multiscale(Path(image))
    target = label_path(image, name)
    _read_multiscale(target)
    names = [label for label in list_labels(image)
             if label != name and (Path(image) / LABELS_GROUP / label).is_dir()] + [name]
    document = {"zarr_format": 3, "node_type": "group",
                "attributes": {"ome": _dump(LabelsAttrs(labels=names, version=NGFF_VERSION))}}
    write_text(Path(image) / LABELS_GROUP / "zarr.json", json.dumps(document, indent=2) + "\n")


def _read_multiscale(path: Path) -> Any:
    """The first multiscales entry of the NGFF image at `path` (0.5 or 0.4 layout), as an
    ``ome_zarr_models`` ``Multiscale`` (validated against the spec)."""
    from pydantic import ValidationError

    attributes = _read_group_attrs(path)
    if isinstance(attributes.get("ome"), dict):
        from ome_zarr_models.v05.image import ImageAttrs

        document, version = attributes["ome"], NGFF_VERSION
    else:
        from ome_zarr_models.v04.image import ImageAttrs  # type: ignore[assignment]

        document, version = attributes, "0.4"
    if "multiscales" not in document:
        raise ValueError(
            f"path must be an NGFF image with 'multiscales' metadata, got a Zarr group "
            f"without it (in {path})"
        )
    try:
        return ImageAttrs.model_validate(document).multiscales[0]
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ValueError(
            f"multiscales must follow NGFF {version}, got {where}: {problem['msg']} "
            f"(in {path})"
        ) from err


def _axis_names(multiscale: Any, path: Path) -> str:
    """Axis string from the NGFF axes."""
    names = [axis.name for axis in multiscale.axes]
    if not all(isinstance(name, str) and len(name) == 1 for name in names):
        raise ValueError(f"axes must be single-letter names, got {names!r} (in {path})")
    try:
        return validate_axes("".join(names))
    except ValueError as err:
        raise ValueError(f"{err} (in {path})") from err


def _scale_of(transforms: Any, ndim: int) -> list[float]:
    """Product of the scale transformations in a list (1s if none)."""
    scale = [1.0] * ndim
    for transform in transforms or ():
        values = getattr(transform, "scale", None)
        if transform.type == "scale" and isinstance(values, list) and len(values) == ndim:
            scale = [a * float(b) for a, b in zip(scale, values)]
    return scale


def _physical_size(axis: Any, scale: float, table: dict[str, float]) -> float | None:
    """Size of one step along an axis in the table's base unit, None without a known unit."""
    unit = axis.unit
    if not isinstance(unit, str) or unit not in table:
        return None
    return scale * table[unit]


def _dataset_path(multiscale: Any, level: int, path: Path) -> str:
    """Relative path of the array at pyramid `level`."""
    datasets = multiscale.datasets
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < len(datasets):
        raise ValueError(
            f"level must be an integer in [0, {len(datasets) - 1}], got {level!r} (in {path})"
        )
    return datasets[level].path


def open_array(path: str | os.PathLike[str], level: int = 0) -> zarr.Array:
    """Open pyramid `level` of the NGFF image at `path` read-only.

    Parameters
    ----------
    path : str or PathLike
        The image (``*.ome.zarr`` folder).
    level : int
        Pyramid level; 0 is full resolution.

    Returns
    -------
    zarr.Array
        Read-only array, axes as in `read_metadata`.

    Raises
    ------
    ValueError
        If `path` is not an NGFF image or has no such level.
    """
    import zarr

    path = Path(path)
    multiscale = _read_multiscale(path)
    relative = _dataset_path(multiscale, level, path)
    try:
        return zarr.open_array(store=str(path / relative), mode="r")
    except (FileNotFoundError, zarr.errors.NodeTypeValidationError, ValueError) as err:
        raise ValueError(
            f"level {level} must be a readable Zarr array at {relative!r}, got "
            f"{type(err).__name__}: {err} (in {path})"
        ) from err


def open_frames(path: str | os.PathLike[str], level: int = 0) -> FrameReader:
    """Open pyramid `level` of the NGFF image at `path` for reading whole frames, fast.

    Like `open_array`, but indexing by timepoint (``frames[t]``, or with `read_frame`)
    decodes the chunk files directly (`spheroseg.zarrio.FrameReader`): a quarter of the
    CPU of zarr-python's path, and no zarr import for images spheroseg wrote.

    Raises
    ------
    ValueError
        If `path` is not an NGFF image or has no such level.
    """
    from spheroseg.zarrio import FrameReader

    path = Path(path)
    relative = _dataset_path(_read_multiscale(path), level, path)
    try:
        return FrameReader(path / relative)
    except ValueError as err:
        raise ValueError(f"level {level} must be a readable Zarr array at {relative!r}, got "
                         f"{err} (in {path})") from err


def read_metadata(path: str | os.PathLike[str]) -> ImageMetadata:
    """Describe the NGFF image at `path`: axes, shape, dtype and physical sizes.

    Parameters
    ----------
    path : str or PathLike
        The image (``*.ome.zarr`` folder), NGFF 0.5 or 0.4.

    Returns
    -------
    ImageMetadata
        Sizes converted to micrometres and seconds; None where the axis has no known unit.

    Raises
    ------
    ValueError
        If `path` is not an NGFF image, or its metadata does not match its level-0 array.
    """
    from spheroseg.zarrio import array_header

    path = Path(path)
    multiscale = _read_multiscale(path)
    axes = _axis_names(multiscale, path)
    # The array's own metadata file says shape and dtype; zarr (0.15 s to import) only
    # when that file is not plain.
    header = array_header(path / _dataset_path(multiscale, 0, path))
    if header is None:
        array = open_array(path, 0)
        header = (tuple(int(n) for n in array.shape), np.dtype(array.dtype))
    shape, dtype = header
    if len(shape) != len(axes):
        raise ValueError(
            f"level 0 must have {len(axes)} dimensions for axes {axes!r}, got "
            f"{len(shape)} (in {path})"
        )
    scale = _scale_of(multiscale.datasets[0].coordinateTransformations, len(axes))
    overall = _scale_of(multiscale.coordinateTransformations, len(axes))
    scale = [a * b for a, b in zip(scale, overall)]
    by_axis = dict(zip(axes, zip(multiscale.axes, scale)))

    def size(axis: str, table: dict[str, float]) -> float | None:
        return _physical_size(*by_axis[axis], table) if axis in by_axis else None

    name = multiscale.name
    return ImageMetadata(
        axes=axes, shape=shape, dtype=dtype,
        pixel_size_um=size("x", SPACE_UNITS_UM), time_interval_s=size("t", TIME_UNITS_S),
        name=name if isinstance(name, str) else None, z_step_um=size("z", SPACE_UNITS_UM),
    )


def frames_and_plane(metadata: ImageMetadata) -> tuple[int, tuple[int, ...]]:
    """(number of timepoints, (Y, X)) of an NGFF image."""
    axes, shape = metadata.axes, metadata.shape
    return (shape[axes.index("t")] if "t" in axes else 1), tuple(shape[-2:])


def check_same_grid(paths: Mapping[str, str | os.PathLike[str]], *, reference: str) -> dict[str, ImageMetadata]:
    """Metadata of the named NGFF images; raise unless all have the frames and Y, X of `reference`.

    Raises
    ------
    ValueError
        If an image is not NGFF, or its number of frames or its Y, X size differs (it belongs
        to another position); the message names it.
    """
    metadata = {name: read_metadata(path) for name, path in paths.items()}
    frames, plane = frames_and_plane(metadata[reference])
    for name, meta in metadata.items():
        count, shape = frames_and_plane(meta)
        if (count, shape) != (frames, plane):
            raise ValueError(f"{name} must have {frames} frames of {plane[0]} x {plane[1]} "
                             f"pixels like the {reference}, got {count} frames of "
                             f"{shape[0]} x {shape[1]} (in {paths[name]})")
    return metadata


def _array_axes(array: Any) -> str:
    """Axis string of a Zarr array from its dimension names, else guessed from ndim."""
    names = getattr(getattr(array, "metadata", None), "dimension_names", None)
    if names and all(isinstance(name, str) for name in names):
        return validate_axes("".join(names))
    guesses = {2: "yx", 3: "tyx", 4: "tcyx", 5: "tczyx"}
    if array.ndim not in guesses:
        raise ValueError(f"array must have 2 to 5 dimensions, got shape {array.shape!r}")
    return guesses[array.ndim]


def read_frame(path_or_array: Any, t: int, *, channel: int = 0) -> np.ndarray:
    """Read one timepoint of one channel as a 2-D image.

    Parameters
    ----------
    path_or_array : str, PathLike, zarr.Array or FrameReader
        An NGFF image path, or an array from `open_frames`/`open_array`/`create_image`.
    t : int
        Timepoint index (ignored if the image has no t axis, where only 0 is valid).
    channel : int
        Channel index (only 0 is valid without a c axis).

    Returns
    -------
    ndarray of shape (Y, X)
        Raw dtype; a z axis is reduced by maximum projection.

    Raises
    ------
    ValueError
        If `t` or `channel` is out of range, or the path is not an NGFF image.
    """
    if isinstance(path_or_array, (str, os.PathLike)):
        array = open_frames(path_or_array, 0)
    else:
        array = path_or_array
    axes = _array_axes(array)
    source = getattr(array, "path", None)
    where = f" (in {source})" if source is not None else ""
    index: list[Any] = []
    for name, size in zip(axes, array.shape):
        if name in "tc":
            value = t if name == "t" else channel
            label = "t" if name == "t" else "channel"
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
                0 <= value < size
            ):
                raise ValueError(f"{label} must be an integer in [0, {size - 1}], got {value!r}{where}")
            index.append(int(value))
        else:
            index.append(slice(None))
    for name, value in (("t", t), ("channel", channel)):
        axis = "t" if name == "t" else "c"
        if axis not in axes and value != 0:
            raise ValueError(f"{name} must be 0 for an image without a {axis} axis, got {value!r}{where}")
    frame = np.asarray(array[tuple(index)])
    return frame.max(axis=0) if "z" in axes else frame


def _direct_chunk_writer(array: Any) -> tuple[Path, Any, Any] | None:
    """Chunk folder, key encoder and Blosc compressor to write chunks of `array` as files.

    Only for arrays as `create_image` makes them (local store, bytes + Blosc codecs);
    None otherwise, and the caller falls back to zarr's own (slower) writing.
    """
    from zarr.codecs import BloscCodec, BytesCodec
    from zarr.storage import LocalStore

    store = array.store_path.store
    codecs = getattr(array.metadata, "codecs", ())
    if (
        not isinstance(store, LocalStore) or store.read_only or len(codecs) != 2
        or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], BloscCodec)
        or array.dtype.byteorder == ">"
        or (codecs[0].endian is not None and codecs[0].endian.value != "little")
    ):
        return None
    from numcodecs import Blosc

    blosc = codecs[1]
    shuffles = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE,
                "bitshuffle": Blosc.BITSHUFFLE}
    compressor = Blosc(cname=blosc.cname.value, clevel=blosc.clevel,
                       shuffle=shuffles[blosc.shuffle.value], blocksize=blosc.blocksize)
    root = Path(store.root) / array.store_path.path
    return root, array.metadata.chunk_key_encoding.encode_chunk_key, compressor


def _write_chunks(array: Any, t: int, frame: np.ndarray, writer: tuple[Path, Any, Any]) -> None:
    """Encode and write every chunk of frame `t` (edge chunks padded with the fill)."""
    import itertools

    root, encode_key, compressor = writer
    chunks = tuple(array.chunks[1:])
    grid = [range(-(-size // chunk)) for size, chunk in zip(frame.shape, chunks)]
    for index in itertools.product(*grid):
        block = frame[tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunks))]
        if block.shape != chunks:
            full = np.full(chunks, array.fill_value, dtype=array.dtype)
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        _write_file(root / encode_key((t, *index)), compressor.encode(np.ascontiguousarray(block)))


def _write_file(path: Path, data: bytes) -> None:
    """Write `data` to `path`, making its folder only when missing (a mkdir per chunk costs
    as much as writing it)."""
    try:
        path.write_bytes(data)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_frame(array: Any, t: int, frame: np.ndarray) -> None:
    """Set ``array[t] = frame`` quickly: chunks are encoded and written as files directly.

    About 4x faster than zarr's generic writing for local arrays with blosc-compressed
    chunks of one t each (`create_image`, `create_levels`, the tile store); any other array
    is written through zarr.
    Different `t` may be written from different threads at once.

    Parameters
    ----------
    array : zarr.Array
        Writable array whose first axis is t.
    t : int
        Index along the first axis.
    frame : ndarray of shape array.shape[1:]
        Converted to the array's dtype.

    Raises
    ------
    ValueError
        If `t` is out of range or `frame` has the wrong shape.
    """
    frame = np.asarray(frame, dtype=array.dtype)
    if tuple(frame.shape) != tuple(array.shape[1:]):
        raise ValueError(f"frame must have shape {tuple(array.shape[1:])}, got {frame.shape}")
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not (
        0 <= t < array.shape[0]
    ):
        raise ValueError(f"t must be an integer in [0, {array.shape[0] - 1}], got {t!r}")
    writer = _direct_chunk_writer(array)
    if writer is None or array.chunks[0] != 1:
        array[int(t)] = frame
        return
    _write_chunks(array, int(t), frame, writer)


def downsample_plane(frame: np.ndarray, *, factor: int = 2) -> np.ndarray:
    """Block mean over the last two axes (edges padded by repetition), same dtype.

    Parameters
    ----------
    frame : ndarray of shape (..., Y, X)
        Any numeric dtype; integer means are rounded half up.
    factor : int
        Block size in y and x.

    Returns
    -------
    ndarray of shape (..., ceil(Y / factor), ceil(X / factor))
        Same dtype as `frame`.

    Examples
    --------
    >>> downsample_plane(np.array([[0, 2, 4], [2, 4, 7]], dtype=np.uint8))
    array([[2, 6]], dtype=uint8)
    """
    pad_y = (-frame.shape[-2]) % factor
    pad_x = (-frame.shape[-1]) % factor
    pad = [(0, 0)] * (frame.ndim - 2) + [(0, pad_y), (0, pad_x)]
    padded = np.pad(frame, pad, mode="edge") if pad_y or pad_x else frame
    integer = np.issubdtype(frame.dtype, np.integer)
    wide = np.int64 if integer else np.float64
    if integer and frame.dtype.itemsize <= 2:
        wide = np.uint32 if frame.dtype.kind == "u" else np.int32
        if factor == 2 and frame.dtype.kind == "u" and padded.size and (
                int(padded.max()) < 1 << (8 * frame.dtype.itemsize - 2)):
            wide = frame.dtype.type  # 4 values and the rounding fit: no widening needed
    # Rows first (contiguous), then columns; in place where possible: 3x faster than
    # summing every block offset into a fresh array.
    rows = padded[..., 0::factor, :].astype(wide)
    for dy in range(1, factor):
        rows += padded[..., dy::factor, :]
    total = rows[..., 0::factor].copy() if factor == 1 else rows[..., 0::factor] + rows[..., 1::factor]
    for dx in range(2, factor):
        total += rows[..., dx::factor]
    count = factor * factor
    if not integer:
        return (total / count).astype(frame.dtype)
    total += count // 2
    if count & (count - 1) == 0:  # a power of two: a shift is floor division, and cheaper
        total >>= count.bit_length() - 1
    else:
        total //= count
    return total.astype(frame.dtype)


def pyramid_shapes(
    shape: Sequence[int], *, factor: int = 2, min_size: int = 256, max_levels: int = 8
) -> list[tuple[int, ...]]:
    """Shapes of the downsampled levels 1, 2, ... of an image of `shape` (y, x last).

    A level is made while the smaller of its y and x sides stays >= `min_size`.

    Examples
    --------
    >>> pyramid_shapes((3, 1, 1024, 700), min_size=256)
    [(3, 1, 512, 350)]
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"factor must be an integer >= 2, got {factor!r}")
    shapes: list[tuple[int, ...]] = []
    current = tuple(int(n) for n in shape)
    for _ in range(max_levels):
        current = current[:-2] + tuple(-(-n // factor) for n in current[-2:])
        if min(current[-2:]) < min_size:
            break
        shapes.append(current)
    return shapes


def create_levels(
    path: str | os.PathLike[str], *, factor: int = 2, min_size: int = 256, max_levels: int = 8
) -> list[zarr.Array]:
    """Add empty downsampled levels to an NGFF image and record them in its metadata.

    Fill level k+1 from level k with `downsample_plane`, one plane at a time. Call it on
    the temporary store inside ``atomic_path`` before the rename; existing levels other
    than 0 are replaced.

    Parameters
    ----------
    path : str or PathLike
        A writable NGFF image created by `create_image`.
    factor, min_size, max_levels : int
        See `pyramid_shapes`.

    Returns
    -------
    list of zarr.Array
        Writable arrays of levels 1, 2, ... (possibly empty for small images).

    Raises
    ------
    ValueError
        If `factor` < 2 or `path` is not an NGFF image.
    """
    import zarr

    path = Path(path)
    multiscale = _read_multiscale(path)
    axes = _axis_names(multiscale, path)
    group = zarr.open_group(store=str(path), mode="r+")
    source = group["0"]
    shapes = pyramid_shapes(source.shape, factor=factor, min_size=min_size,
                            max_levels=max_levels)
    base = _scale_of(multiscale.datasets[0].coordinateTransformations, len(axes))
    scales = [base[:-2] + [s * factor**level for s in base[-2:]]
              for level in range(len(shapes) + 1)]
    levels = [
        group.create_array(
            str(level), shape=shape, dtype=source.dtype,
            chunks=default_chunks(shape, axes=axes), compressors=[default_compressor()],
            fill_value=0, dimension_names=list(axes), overwrite=True,
            chunk_key_encoding=CHUNK_KEY_ENCODING,
        )
        for level, shape in enumerate(shapes, start=1)
    ]
    group.attrs["ome"] = {**group.attrs["ome"],
                          **_image_attributes(multiscale.axes, scales, multiscale.name)}
    return levels


#: Share of the sampled pixels below ``window.start`` and above ``window.end`` of the
#: ``omero`` channels (the report's montage uses the same 1st-99.5th percentile grey scale).
DISPLAY_PERCENTILES = (1.0, 99.5)
#: Frames sampled for a display window (evenly over time), and the longest side of a sampled
#: plane (a larger frame contributes evenly spaced pixels).
DISPLAY_FRAMES = 8
DISPLAY_SIDE = 512


def display_times(frames: int) -> list[int]:
    """The timepoints :func:`display_windows` samples: up to :data:`DISPLAY_FRAMES`, evenly
    spaced, first and last included.

    Examples
    --------
    >>> display_times(3), display_times(200)
    ([0, 1, 2], [0, 28, 57, 85, 114, 142, 171, 199])
    """
    return sorted({int(t) for t in np.linspace(0, frames - 1, min(frames, DISPLAY_FRAMES)).round()})


def display_plane(frame: np.ndarray) -> np.ndarray:
    """A copy of `frame` (``[c,] [z,] y, x``) with every pixel up to :data:`DISPLAY_SIDE` per
    side, else evenly spaced ones: what one frame gives :func:`display_windows`."""
    step = max(1, -(-max(frame.shape[-2:]) // DISPLAY_SIDE))
    return np.array(frame[..., ::step, ::step])


def display_windows(planes: Sequence[np.ndarray]) -> list[dict[str, float]]:
    """A display window per channel from sampled frames, each ``c, [z,] y, x``
    (:func:`display_plane` of the :func:`display_times` frames): ``start``/``end`` at
    :data:`DISPLAY_PERCENTILES`, ``min``/``max`` the dtype's range (a float image's sampled
    range).

    Examples
    --------
    >>> ramp = (np.arange(64 * 64).reshape(1, 64, 64) % 200).astype(np.uint8)
    >>> display_windows([np.zeros_like(ramp), ramp])
    [{'min': 0.0, 'max': 255.0, 'start': 0.0, 'end': 197.0}]
    >>> display_windows([np.full((1, 4, 4), 0.5, np.float32)])
    [{'min': 0.5, 'max': 1.5, 'start': 0.5, 'end': 1.5}]
    """
    from spheroseg.normalization import integer_percentiles

    windows = []
    for values in np.moveaxis(np.stack(planes), 1, 0):  # per channel: t, [z,] y, x
        small_integers = values.dtype.kind in "ui" and values.dtype.itemsize <= 2  # from a histogram
        start, end = (float(v) for v in (integer_percentiles(values, DISPLAY_PERCENTILES) if small_integers
                                         else np.percentile(values, DISPLAY_PERCENTILES)))
        if np.issubdtype(values.dtype, np.integer):
            low, high = float(np.iinfo(values.dtype).min), float(np.iinfo(values.dtype).max)
        else:
            low, high = float(np.min(values)), float(np.max(values))
        end = end if end > start else start + 1.0  # blank frames: viewers need a window of width > 0
        windows.append({"min": low, "max": max(high, end), "start": start, "end": end})
    return windows


def write_channels(path: str | os.PathLike[str], windows: Sequence[Mapping[str, float]],
                   labels: Sequence[str] = ()) -> None:
    """Add ``omero`` channel metadata to an NGFF image: each channel's display window
    (:func:`display_windows`) and name (`labels`, where the file named them), in white, so
    that viewers (napari-ome-zarr, OMERO) show named channels with a useful contrast.

    Call it inside the ``atomic_path`` block that writes the image.

    Raises
    ------
    ValueError
        If `labels` is neither empty nor one name per window.
    """
    import zarr
    from ome_zarr_models.common.omero import Omero

    if labels and len(labels) != len(windows):
        raise ValueError(f"labels must name each of the {len(windows)} channel(s), got {list(labels)!r}")
    channels = [{"color": "FFFFFF", "window": dict(window), "active": True,
                 **({"label": labels[index]} if labels else {})} for index, window in enumerate(windows)]
    group = zarr.open_group(store=str(path), mode="r+")
    group.attrs["ome"] = {**group.attrs["ome"], "omero": _dump(Omero(channels=channels))}


def write_pyramid(
    path: str | os.PathLike[str], *, factor: int = 2, min_size: int = 256,
    max_levels: int = 8,
) -> int:
    """Add downsampled levels (block mean in y/x) to a filled NGFF image, for viewing.

    Each level is made from the previous one, one timepoint at a time, so memory stays at
    about one frame.

    Parameters
    ----------
    path : str or PathLike
        A writable NGFF image created by `create_image`.
    factor, min_size, max_levels : int
        See `pyramid_shapes`.

    Returns
    -------
    int
        Number of levels added.

    Raises
    ------
    ValueError
        If `factor` < 2 or `path` is not an NGFF image.
    """
    import zarr

    levels = create_levels(path, factor=factor, min_size=min_size, max_levels=max_levels)
    source = zarr.open_array(store=str(Path(path) / "0"), mode="r")
    for target in levels:
        for t in range(target.shape[0]):
            write_frame(target, t, downsample_plane(np.asarray(source[t]), factor=factor))
        source = target
    return len(levels)
