"""Physical sizes: pixel size, frame interval and z step from the file metadata (OME-XML,
ImageJ, TIFF resolution tags), combined with the user's overrides."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tifffile

LOG = logging.getLogger("spheroseg.ingest")

MICROMETRES_PER_UNIT = {
    "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "\u00b5m": 1.0, "\u03bcm": 1.0, "\\u00b5m": 1.0, "nm": 1e-3, "nanometer": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6,
    "inch": 25400.0, "in": 25400.0,
}
SECONDS_PER_UNIT = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "millisecond": 1e-3,
    "\u00b5s": 1e-6, "us": 1e-6, "microsecond": 1e-6, "ns": 1e-9, "min": 60.0,
    "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
}
# Screen resolutions that image editors write by default: they are not a calibration.
DEFAULT_DPI = (72.0, 96.0)


@dataclass(frozen=True)
class PhysicalSizes:
    """Physical sizes of one image; None where unknown."""

    pixel_size_um: float | None = None
    time_interval_s: float | None = None
    z_step_um: float | None = None


def _unit_factor(unit: Any, table: dict[str, float]) -> float | None:
    """Conversion factor for a unit name, None if unknown."""
    if not isinstance(unit, str):
        return None
    return table.get(unit.strip()) or table.get(unit.strip().lower())


def _clean(value: float) -> float:
    """Round away binary noise from unit conversions (12 significant digits)."""
    return float(f"{value:.12g}")


def _positive(value: Any) -> float | None:
    """`value` as a finite positive float, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _ome_pixels(root: Any, series: int, name: str) -> Any:
    """The Pixels element of the OME image named `name` (else the `series`-th image)."""
    images = root.findall("{*}Image")
    named = [image for image in images if name and image.get("Name") == name]
    image = named[0] if len(named) == 1 else images[series] if series < len(images) else None
    return None if image is None else image.find("{*}Pixels")


def _ome_sizes(xml: str, series: int = 0, name: str = "") -> PhysicalSizes:
    """Pixel size, z step and frame interval of one OME image (the first by default)."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        LOG.warning("OME-XML metadata could not be parsed; ignoring it")
        return PhysicalSizes()
    pixels = _ome_pixels(root, series, name)
    if pixels is None:
        return PhysicalSizes()

    def length(attribute: str) -> float | None:
        factor = _unit_factor(pixels.get(attribute + "Unit", "\u00b5m"), MICROMETRES_PER_UNIT)
        value = _positive(pixels.get(attribute))
        return value * factor if value is not None and factor is not None else None

    interval = _positive(pixels.get("TimeIncrement"))
    factor = _unit_factor(pixels.get("TimeIncrementUnit", "s"), SECONDS_PER_UNIT)
    interval = interval * factor if interval is not None and factor is not None else None
    if interval is None:
        interval = _ome_delta_t(pixels)
    return PhysicalSizes(length("PhysicalSizeX"), interval, length("PhysicalSizeZ"))


def read_channel_names(tif: tifffile.TiffFile, series: int = 0) -> list[str]:
    """The channel names of one series from its OME-XML (``Channel/@Name``, in file order);
    empty for a TIFF without OME-XML or with unparsable OME-XML."""
    import xml.etree.ElementTree as ElementTree

    if not (tif.is_ome and tif.ome_metadata) or series >= len(tif.series):
        return []
    try:
        root = ElementTree.fromstring(tif.ome_metadata)
    except ElementTree.ParseError:
        return []
    pixels = _ome_pixels(root, series, tif.series[series].name or "")
    return [] if pixels is None else [channel.get("Name", "") for channel in pixels.findall("{*}Channel")]


def _ome_delta_t(pixels: Any) -> float | None:
    """Median step of the plane ``DeltaT`` values of channel 0, z 0 over time."""
    times = {}
    for plane in pixels.findall("{*}Plane"):
        if plane.get("TheC", "0") == "0" and plane.get("TheZ", "0") == "0":
            delta = plane.get("DeltaT")
            factor = _unit_factor(plane.get("DeltaTUnit", "s"), SECONDS_PER_UNIT)
            try:
                times[int(plane.get("TheT", "0"))] = float(delta) * factor
            except (TypeError, ValueError):
                continue
    return median_step(times)


def median_step(times: dict[int, float]) -> float | None:
    """Median step between the times of consecutive timepoints (the upper median), None with
    fewer than two timepoints or a step that is not positive.

    Examples
    --------
    >>> round(median_step({0: 0.445, 1: 11.086, 2: 21.740}), 6)
    10.654
    """
    ordered = [times[t] for t in sorted(times)]
    steps = sorted(b - a for a, b in zip(ordered, ordered[1:]))
    return _positive(steps[len(steps) // 2]) if steps else None


def _resolution_um(page: Any, unit_name: str | None) -> float | None:
    """Pixel size from the XResolution tag and the resolution unit (or an ImageJ unit)."""
    tag = page.tags.get("XResolution")
    try:
        numerator, denominator = tag.value
        pixels_per_unit = numerator / denominator
        units_per_pixel = denominator / numerator
    except (AttributeError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (math.isfinite(pixels_per_unit) and pixels_per_unit > 0):
        return None
    if unit_name is not None:
        factor = _unit_factor(unit_name, MICROMETRES_PER_UNIT)
    else:
        resolution_unit = int(getattr(page.tags.get("ResolutionUnit"), "value", 1) or 1)
        factor = {2: 25400.0, 3: 10000.0}.get(resolution_unit)
        if resolution_unit == 2 and pixels_per_unit in DEFAULT_DPI:
            factor = None
    return _clean(factor * units_per_pixel) if factor is not None else None


def read_physical_sizes(tif: tifffile.TiffFile, series: int = 0) -> PhysicalSizes:
    """Physical sizes from OME-XML, else ImageJ metadata, else TIFF resolution tags.

    Parameters
    ----------
    tif : tifffile.TiffFile
        An open TIFF file.
    series : int
        Which series (OME image) of the file.

    Returns
    -------
    PhysicalSizes
        Sizes in micrometres and seconds; None where the file does not say.
    """
    page = tif.series[series].keyframe if series < len(tif.series) else tif.pages.first
    if tif.is_ome and tif.ome_metadata:
        sizes = _ome_sizes(tif.ome_metadata, series, tif.series[series].name or "")
        if sizes != PhysicalSizes():
            return sizes
    imagej = tif.imagej_metadata if tif.is_imagej else None
    if isinstance(imagej, dict):
        unit = imagej.get("unit")
        factor = _unit_factor(unit, MICROMETRES_PER_UNIT)
        spacing = _positive(imagej.get("spacing"))
        interval = _positive(imagej.get("finterval"))
        time_factor = _unit_factor(imagej.get("tunit", "sec"), SECONDS_PER_UNIT)
        return PhysicalSizes(
            _resolution_um(page, unit) if factor is not None else None,
            interval * time_factor if interval is not None and time_factor else None,
            spacing * factor if spacing is not None and factor is not None else None,
        )
    return PhysicalSizes(_resolution_um(page, None), None, None)


def resolve_sizes(
    found: PhysicalSizes, overrides: PhysicalSizes, *, frames: int, has_z: bool, label: str
) -> PhysicalSizes:
    """Combine sizes from the file with explicit overrides (which win), logging the outcome.

    Missing pixel size (and missing frame interval for a time series, or z step for a
    stack) without an override is logged as a warning: lengths are then in pixels.

    Examples
    --------
    >>> resolve_sizes(PhysicalSizes(0.5, None), PhysicalSizes(None, 60.0), frames=1,
    ...               has_z=False, label="A1")
    PhysicalSizes(pixel_size_um=0.5, time_interval_s=60.0, z_step_um=None)
    """
    merged = {}
    for field, value in vars(found).items():
        override = getattr(overrides, field)
        if override is not None and value is not None and not math.isclose(override, value):
            LOG.info("%s: %s %s from the command line replaces %s from the file",
                     label, field, override, value)
        merged[field] = override if override is not None else value
    result = PhysicalSizes(**merged)
    wanted = {"pixel_size_um": "--pixel-size-um", "time_interval_s": "--time-interval-s",
              "z_step_um": "--z-step-um"}
    if frames == 1:
        wanted.pop("time_interval_s")
    if not has_z:
        wanted.pop("z_step_um")
    for field, option in wanted.items():
        if getattr(result, field) is None:
            LOG.warning("%s: %s unknown (no metadata in the file and no %s); results will "
                        "use %s units", label, field, option,
                        "frame" if field == "time_interval_s" else "pixel")
    return result


def check_overrides(overrides: PhysicalSizes) -> None:
    """Raise ValueError for an override that is not a finite number > 0."""
    for name in ("pixel_size_um", "time_interval_s", "z_step_um"):
        value = getattr(overrides, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 < value < math.inf):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
