"""Ingest raw microscopy (TIFF, OME-TIFF, ImageJ hyperstacks, per-timepoint files; ND2, CZI
and LIF with the optional ``vendor`` extra) into OME-Zarr.

One position becomes one NGFF image with axes ``t, c, (z,) y, x``, the raw dtype and values,
and the physical pixel size and frame interval from the file metadata (OME-XML, ImageJ, TIFF
resolution tags) or from explicit overrides. Frames are streamed: a few timepoints are in
memory at a time, and compression of different frames runs in parallel threads.

``discover``  which positions a folder holds (`discover_positions`, `compile_pattern`)
``metadata``  physical sizes from the files and the overrides (`PhysicalSizes`)
``tiff``      a TIFF as a checked time series, read frame by frame (`inspect_tiff`)
``vendor``    an ND2, CZI or LIF file's scenes as time series, through bioio (optional)
``sources``   which reader reads a file (`inspect_series`), one position's files (`plan_position`)
``write``     one position into OME-Zarr, atomically (`ingest_position`)

Discovery only lists folder entries and nothing here imports anything heavy at import time
(tifffile, bioio, numpy and zarr load inside the functions), so the Snakefile can call
`discover_positions` when it builds the DAG. The names below are the public interface.
"""

from __future__ import annotations

from spheroseg.ingest.discover import VENDOR_SUFFIXES, compile_pattern, discover_positions
from spheroseg.ingest.metadata import PhysicalSizes, check_overrides, read_physical_sizes, resolve_sizes
from spheroseg.ingest.sources import inspect_series, iter_frames, plan_position
from spheroseg.ingest.tiff import (
    IngestError,
    TiffLayout,
    check_axes_override,
    inspect_tiff,
    inspect_tiff_series,
)
from spheroseg.ingest.vendor import MissingReaderError, VendorLayout
from spheroseg.ingest.write import ingest_position, write_frames

__all__ = [
    "VENDOR_SUFFIXES", "IngestError", "MissingReaderError", "PhysicalSizes", "TiffLayout",
    "VendorLayout", "check_axes_override", "check_overrides", "compile_pattern",
    "discover_positions", "ingest_position", "inspect_series", "inspect_tiff",
    "inspect_tiff_series", "iter_frames", "plan_position", "read_physical_sizes",
    "resolve_sizes", "write_frames",
]
