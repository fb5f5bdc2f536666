"""Which frames should a person annotate next: rank frames by how much the model needs help,
and write the chosen ones as image + proposed-mask pairs into an annotation folder.

A frame's need for help (:func:`need_score`) adds three signs that the current model is
unsure or wrong there:

- the share of pixels whose foreground probability lies in [0.3, 0.7] (``uncertain``);
- how much its mask disagrees with its neighbouring frames' masks (``disagreement``,
  ``1 - mean IoU`` with the frames before and after: objects grow, they do not jump);
- the QC flags raised on it (area jumps, uncertain frame, no objects left, ...), 0.1 each.

:func:`rank_frames` then covers the experiment among the frames that need help: first the
neediest frame of each condition (from the sample sheet), then of each position not yet
chosen, then the rest by score; a frame is promoted for coverage only if its score is at
least :data:`COVERAGE_SHARE` of the top score, so a condition the model already segments
confidently and consistently does not take an annotation from one where it fails. :func:`write_proposals` writes the chosen frames in the layout
``training.annotations`` reads (``images/NAME.tif`` + ``masks/NAME.tif``, or ``NAME.tif`` +
``NAME_mask.tif`` in a folder that already uses that layout), keeping the pixel size in the
TIFF, and never overwrites a mask that exists (a corrected one): that frame is skipped and
the next candidate taken. ``proposals.json`` in the annotation folder records every proposal
(frame, position, timepoint, score, the proposed mask's SHA-256), so that a later report can
tell corrected masks from masks left as proposed, and the position's normalisation window
(:func:`recorded_windows`), so that a model fine-tuned with ``"scope": "series"`` sees the
frame as predict will.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

LOGGER = logging.getLogger("spheroseg.propose")
RECORD_NAME = "proposals.json"
FLAG_WEIGHT = 0.1
#: A frame is promoted for coverage only with at least this share of the top need score.
COVERAGE_SHARE = 0.5


@dataclass(frozen=True)
class FrameCandidate:
    """One frame that could be proposed, with the signs that the model needs help there."""

    position: str
    timepoint: int
    uncertain: float = 0.0
    disagreement: float = 0.0
    flags: tuple[str, ...] = ()
    condition: str | None = None

    @property
    def name(self) -> str:
        """File stem of the frame's annotation pair, e.g. ``pos0_t0003``."""
        return f"{self.position}_t{self.timepoint:04d}"

    @property
    def score(self) -> float:
        """:func:`need_score` of this frame."""
        return need_score(uncertain=self.uncertain, disagreement=self.disagreement, flags=self.flags)


def need_score(*, uncertain: float, disagreement: float, flags: Sequence[str]) -> float:
    """How much a frame needs a person: uncertain share + disagreement + 0.1 per distinct flag.

    Examples
    --------
    >>> round(need_score(uncertain=0.2, disagreement=0.1, flags=["area_jump", "area_jump"]), 6)
    0.4
    """
    return float(uncertain) + float(disagreement) + FLAG_WEIGHT * len(set(flags))


def mask_iou(a: NDArray, b: NDArray) -> float:
    """Foreground IoU of two masks (1.0 when both are empty).

    Examples
    --------
    >>> mask_iou(np.array([1, 1, 0]), np.array([1, 0, 0]))
    0.5
    """
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def neighbour_disagreement(masks: Sequence[NDArray]) -> list[float]:
    """Per frame, ``1 - mean IoU`` of its mask with the previous and next frames' masks.

    Parameters
    ----------
    masks : sequence of ndarray of shape (Y, X)
        One mask (or label image) per frame, in time order.

    Returns
    -------
    list of float
        One value in [0, 1] per frame; 0 for a single frame.

    Examples
    --------
    >>> full, empty = np.ones((2, 2)), np.zeros((2, 2))
    >>> neighbour_disagreement([full, full, empty])
    [0.0, 0.5, 1.0]
    """
    ious = [mask_iou(masks[t], masks[t + 1]) for t in range(len(masks) - 1)]
    values = []
    for t in range(len(masks)):
        near = ious[max(t - 1, 0): t + 1]
        values.append(1.0 - float(np.mean(near)) if near else 0.0)
    return values


def _best_first(candidates: Iterable[FrameCandidate]) -> list[FrameCandidate]:
    """Candidates by score (highest first), ties by position and timepoint."""
    return sorted(candidates, key=lambda c: (-c.score, c.position, c.timepoint))


def rank_frames(candidates: Sequence[FrameCandidate], *, coverage_share: float = COVERAGE_SHARE
                ) -> list[FrameCandidate]:
    """Order frames for annotation: coverage among the needy frames first, then need.

    A frame is *needy* if its score is at least `coverage_share` times the top score. The
    neediest needy frame of each condition comes first (conditions by their neediest frame),
    then the neediest needy frame of each position not yet represented, then every other
    frame by :attr:`FrameCandidate.score`. Coverage thus only decides between frames of a
    similar need: a frame the model already handles well teaches it little, whatever its
    condition, and does not displace one where it fails.

    Parameters
    ----------
    candidates : sequence of FrameCandidate
    coverage_share : float
        In [0, 1]; 0 covers every condition and position first whatever its need, 1 ranks
        by need alone (coverage then only breaks exact ties).

    Returns
    -------
    list of FrameCandidate
        All candidates, each once.

    Raises
    ------
    ValueError
        If `coverage_share` is outside [0, 1].

    Examples
    --------
    >>> frames = [FrameCandidate("a", 0, 0.9), FrameCandidate("a", 1, 0.8), FrameCandidate("b", 0, 0.5),
    ...           FrameCandidate("c", 0, 0.1)]
    >>> [f.name for f in rank_frames(frames)]
    ['a_t0000', 'b_t0000', 'a_t0001', 'c_t0000']
    """
    if not 0.0 <= coverage_share <= 1.0:
        raise ValueError(f"coverage_share must be in [0, 1], got {coverage_share!r}")
    ordered = _best_first(candidates)
    floor = coverage_share * ordered[0].score if ordered else 0.0
    needy = [c for c in ordered if c.score >= floor]
    chosen: list[FrameCandidate] = []
    for key in (lambda c: c.condition, lambda c: c.position):
        covered = {key(c) for c in chosen}
        for candidate in needy:
            if key(candidate) not in covered and candidate not in chosen:
                covered.add(key(candidate))
                chosen.append(candidate)
    return chosen + [c for c in ordered if c not in chosen]


@dataclass(frozen=True)
class PositionResults:
    """The workflow outputs of one position that :func:`score_position` reads."""

    name: str
    image: Path
    probabilities: Path
    labels: Path
    qc: Path | None = None

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> PositionResults:
        """The results of the position whose folder is `folder` (named after it)."""
        from spheroseg.ngff import label_path
        from spheroseg.segmentation import LABEL_NAME

        folder = Path(folder)
        qc = folder / "qc.csv"
        image = folder / "image.ome.zarr"
        return cls(folder.name, image, folder / "probabilities.ome.zarr", label_path(image, LABEL_NAME),
                   qc if qc.is_file() else None)


def score_position(results: PositionResults, *, condition: str | None = None) -> list[FrameCandidate]:
    """One :class:`FrameCandidate` per frame of a position, from its probabilities, labels and QC.

    Raises
    ------
    ValueError
        If an input is missing or the probabilities and labels disagree in frame count.
    """
    from spheroseg import ngff
    from spheroseg.report.qc import flagged_timepoints, read_qc, uncertain_shares

    for path in (results.image, results.probabilities, results.labels):
        if not Path(path).exists():
            raise ValueError(f"position results must exist, got missing {str(path)!r} "
                             f"(position {results.name!r}; run the workflow first)")
    shares = uncertain_shares(results.probabilities)
    frames, _ = ngff.frames_and_plane(ngff.read_metadata(results.labels))
    if frames != len(shares):
        raise ValueError(f"labels must have one frame per probability frame, got {frames} and "
                         f"{len(shares)} (in {results.labels})")
    labels = ngff.open_array(results.labels)
    disagreement = neighbour_disagreement([ngff.read_frame(labels, t) > 0 for t in range(frames)])
    flags = flagged_timepoints(read_qc(results.qc)) if results.qc is not None else {}
    return [FrameCandidate(results.name, t, float(shares[t]), disagreement[t], tuple(flags.get(t, ())),
                           condition) for t in range(frames)]


@dataclass(frozen=True)
class Layout:
    """Where the image and mask of a pair named NAME go in an annotation folder."""

    folder: Path
    flat: bool = False

    @classmethod
    def of(cls, folder: str | os.PathLike[str]) -> Layout:
        """images/ + masks/ (or labels/) unless the folder already holds flat X + X_mask pairs."""
        folder = Path(folder)
        flat = (folder.is_dir() and not (folder / "images").is_dir()
                and any(p.stem.endswith("_mask") for p in folder.glob("*.tif*")))
        return cls(folder, flat)

    def image_path(self, name: str) -> Path:
        """Path of the image of pair `name`."""
        return self.folder / f"{name}.tif" if self.flat else self.folder / "images" / f"{name}.tif"

    def mask_path(self, name: str) -> Path:
        """Path of the mask of pair `name` (``labels/`` when the folder uses that name)."""
        if self.flat:
            return self.folder / f"{name}_mask.tif"
        masks = "labels" if (self.folder / "labels").is_dir() and not (self.folder / "masks").is_dir() else "masks"
        return self.folder / masks / f"{name}.tif"


def write_tiff(path: str | os.PathLike[str], plane: NDArray, *, pixel_size_um: float | None) -> None:
    """Write a 2-D plane as an ImageJ TIFF (napari and Fiji read it), with its pixel size, atomically."""
    import tifffile

    from spheroseg.atomic import atomic_path

    options: dict[str, Any] = {}
    if pixel_size_um:
        options = {"resolution": (1.0 / pixel_size_um, 1.0 / pixel_size_um), "metadata": {"unit": "um"}}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(plane), imagej=True, **options)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The proposals record of an annotation folder (``{"proposals": {}}`` if there is none).

    Raises
    ------
    ValueError
        If the record exists but is not a proposals record.
    """
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return {"proposals": {}}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{RECORD_NAME} must be JSON, got {err} (in {path})") from err
    if not isinstance(record, dict) or not isinstance(record.get("proposals"), dict):
        raise ValueError(f"{RECORD_NAME} must hold a 'proposals' mapping, got {type(record).__name__} (in {path})")
    return record


def proposal_status(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every recorded proposal with its state now: ``corrected`` (the mask changed since it was
    proposed), ``as proposed`` (unchanged) or ``mask removed``."""
    layout = Layout.of(folder)
    rows = []
    for name, entry in sorted(read_record(folder)["proposals"].items()):
        mask = layout.mask_path(name)
        state = ("mask removed" if not mask.is_file()
                 else "as proposed" if sha256_of(mask) == entry.get("proposed_mask_sha256") else "corrected")
        rows.append({"frame": name, **entry, "state": state})
    return rows


@dataclass
class Proposal:
    """What :func:`write_proposals` did: the frames written and those skipped (mask exists)."""

    written: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self, folder: str | os.PathLike[str]) -> list[str]:
        """Console lines saying what was written where and what was skipped."""
        lines = [f"proposed {len(self.written)} frame(s) for annotation in {folder}: "
                 + (", ".join(entry["frame"] for entry in self.written) or "none")]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} frame(s) whose mask exists (kept as they are, "
                         f"e.g. corrected): {', '.join(self.skipped)}")
        return lines


def _frame_pair(results: PositionResults, timepoint: int, channel: int) -> tuple[NDArray, NDArray, float | None]:
    """Raw frame (its own dtype), proposed 0/1 uint8 mask and pixel size of one frame."""
    from spheroseg import ngff

    image = ngff.read_frame(ngff.open_array(results.image), timepoint, channel=channel)
    mask = (ngff.read_frame(ngff.open_array(results.labels), timepoint) > 0).astype(np.uint8)
    return image, mask, ngff.read_metadata(results.image).pixel_size_um


def series_spec(normalization: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``"scope": "series"`` form of a model's normalisation, or None if its kind has none."""
    if normalization is None or normalization.get("kind") not in ("percentile", "robust"):
        return None
    return {**normalization, "scope": "series"}


def _position_window(results: PositionResults, channel: int, spec: dict[str, Any]) -> dict[str, Any]:
    """The normalisation window of a position's whole time series, as predict computes it."""
    from spheroseg import ngff
    from spheroseg.normalization import series_window

    array = ngff.open_array(results.image)
    frames, _ = ngff.frames_and_plane(ngff.read_metadata(results.image))
    return series_window((ngff.read_frame(array, t, channel=channel)[np.newaxis] for t in range(frames)), spec)


def recorded_windows(folder: str | os.PathLike[str], normalization: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Pair name -> its position's normalisation window, for the pairs `propose` wrote with a window
    of exactly this (series) normalisation; other pairs are absent.

    Raises
    ------
    ValueError
        If the folder's record exists but is not a proposals record.
    """
    windows = {}
    for name, entry in read_record(folder)["proposals"].items():
        window = entry.get("normalization_window") if isinstance(entry, dict) else None
        if isinstance(window, dict) and window.get("normalization") == dict(normalization):
            windows[name] = {key: window[key] for key in ("low", "top", "negate")}
    return windows


def write_proposals(ranked: Sequence[FrameCandidate], positions: Mapping[str, PositionResults],
                    annotations: str | os.PathLike[str], *, n: int, channel: int | Mapping[str, int] = 0,
                    normalization: Mapping[str, Any] | None = None) -> Proposal:
    """Write the first `n` ranked frames whose mask does not exist yet as annotation pairs.

    Parameters
    ----------
    ranked : sequence of FrameCandidate
        Frames in the order of :func:`rank_frames`.
    positions : mapping of str to PositionResults
        The results of each position named in `ranked`.
    annotations : str or PathLike
        Annotation folder (``training.annotations``); created if missing.
    n : int
        Frames to write.
    channel : int or mapping of str to int
        Image channel written: one for every position, or by position name.
    normalization : mapping, optional
        The normalisation of the model that will be fine-tuned; with a percentile or robust
        kind each pair's entry records its position's series window
        (``normalization_window``), which training with ``"scope": "series"`` uses.

    Returns
    -------
    Proposal

    Raises
    ------
    ValueError
        If `n` is not a positive integer.
    """
    check_count(n)
    layout, proposal = Layout.of(annotations), Proposal()
    spec, windows = series_spec(normalization), {}
    for candidate in ranked:
        if len(proposal.written) == n:
            break
        if layout.mask_path(candidate.name).exists():
            proposal.skipped.append(candidate.name)
            continue
        number = channel if isinstance(channel, int) else channel[candidate.position]
        image, mask, pixel_size = _frame_pair(positions[candidate.position], candidate.timepoint, number)
        write_tiff(layout.image_path(candidate.name), image, pixel_size_um=pixel_size)
        write_tiff(layout.mask_path(candidate.name), mask, pixel_size_um=pixel_size)
        entry = {key: value for key, value in asdict(candidate).items() if key != "flags"}
        if spec is not None and candidate.position not in windows:
            windows[candidate.position] = _position_window(positions[candidate.position], number, spec)
        if spec is not None:
            entry["normalization_window"] = {"normalization": spec, **windows[candidate.position]}
        proposal.written.append({"frame": candidate.name, **entry, "flags": list(candidate.flags),
                                 "score": round(candidate.score, 6),
                                 "proposed_mask_sha256": sha256_of(layout.mask_path(candidate.name))})
    return proposal


def check_count(n: object) -> None:
    """Raise ValueError unless `n` (``propose.n``) is a positive integer."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r} (config key 'propose.n')")


def record_proposals(annotations: str | os.PathLike[str], proposal: Proposal, *, model: str | None) -> None:
    """Add the written proposals to the folder's ``proposals.json`` (atomically)."""
    from spheroseg.atomic import write_text

    record = read_record(annotations)
    for entry in proposal.written:
        record["proposals"][entry["frame"]] = {**{k: v for k, v in entry.items() if k != "frame"}, "model": model}
    write_text(Path(annotations) / RECORD_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")


def propose_frames(position_folders: Sequence[str | os.PathLike[str]], annotations: str | os.PathLike[str], *,
                   n: int = 8, channel: int | Sequence[int] = 0, conditions: Mapping[str, str] | None = None,
                   model: str | None = None, normalization: Mapping[str, Any] | None = None) -> Proposal:
    """Rank every frame of the positions and write the `n` neediest new ones for annotation.

    Parameters
    ----------
    position_folders : sequence of str or PathLike
        Result folders of the positions (each with image, probabilities and labels OME-Zarr
        and, if present, ``qc.csv``).
    annotations : str or PathLike
        Annotation folder (``training.annotations``).
    n : int
        Frames to propose.
    channel : int or sequence of int
        Image channel written: one for every position, or one per folder of `position_folders`
        (``ingest.channel`` by name can choose a different number in each).
    conditions : mapping of str to str, optional
        Position name -> condition (sample sheet), for coverage.
    model : str, optional
        The model whose predictions are proposed (recorded).
    normalization : mapping, optional
        Its card's normalisation (see `write_proposals`).

    Returns
    -------
    Proposal

    Raises
    ------
    ValueError
        If `n` is bad, no position is given, a position's results are missing or `channel`
        does not give one number per position.
    """
    check_count(n)
    if not position_folders:
        raise ValueError("position_folders must name at least one position's results, got none")
    if not isinstance(channel, int) and len(channel) != len(position_folders):
        raise ValueError(f"channel must be one number, or one per position ({len(position_folders)}), "
                         f"got {len(channel)}: {list(channel)}")
    positions = {results.name: results for results in map(PositionResults.from_folder, position_folders)}
    if not isinstance(channel, int):
        channel = dict(zip(positions, channel, strict=True))
    conditions = conditions or {}
    candidates = [c for name, results in positions.items()
                  for c in score_position(results, condition=conditions.get(name))]
    proposal = write_proposals(rank_frames(candidates), positions, annotations, n=n, channel=channel,
                               normalization=normalization)
    record_proposals(annotations, proposal, model=model)
    return proposal


def run_summary(path: str | os.PathLike[str], *, since: float) -> list[str]:
    """Console lines of a ``spheroseg propose --output`` file written after `since` (epoch
    seconds); none if it is older or absent."""
    path = Path(path)
    if not path.is_file() or path.stat().st_mtime < since:
        return []
    run = json.loads(path.read_text(encoding="utf-8"))
    return Proposal(run["written"], run["skipped"]).summary(run["annotations"])
