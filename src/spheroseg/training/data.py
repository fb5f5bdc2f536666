"""Annotation discovery, validation and foreground-oversampling patch sampling.

Two layouts are accepted (masks matched to images by file stem):

- ``DIR/images/X.tif`` with ``DIR/masks/X.tif`` (or ``DIR/labels/X.tif``);
- ``DIR/X.tif`` with ``DIR/X_mask.tif`` side by side.

Images and masks may be TIFF or PNG. Masks are binary (0/1 or 0/255) or label images
(every value > 0 is foreground). All checks run before any training starts.

Several folders can be combined (:class:`AnnotationSource`, :func:`find_source_pairs`);
a folder whose pixel size is known is resampled to the training pixel size on loading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
MASK_FOLDERS = ("masks", "labels")
MASK_SUFFIX = "_mask"
MASK_KINDS = ("auto", "binary", "labels")
SAMPLING_KINDS = ("area", "source")


class AnnotationError(ValueError):
    """An annotation folder or pair is unusable for training."""


@dataclass(frozen=True)
class AnnotationPair:
    """One image and its mask, matched by name; `pixel_size_um` of the files if known; `source`:
    the index of the annotation folder it came from."""

    name: str
    image_path: Path
    mask_path: Path
    pixel_size_um: float | None = None
    source: int = 0


@dataclass(frozen=True)
class AnnotationSource:
    """An annotation folder, the pixel size of its images (None: unknown, used as they are),
    and how the model card describes it (None: the folder's path)."""

    folder: Path
    pixel_size_um: float | None = None
    label: str | None = None

    def describe(self) -> dict[str, object]:
        """``{"annotations": label or folder, "pixel_size_um": ...}`` for the model card."""
        return {"annotations": self.label or str(self.folder), "pixel_size_um": self.pixel_size_um}


@dataclass
class Sample:
    """One loaded training pair: normalised image, binary mask, optional weight map."""

    name: str
    image: np.ndarray  # (Y, X) float32, normalised
    mask: np.ndarray  # (Y, X) float32 in {0, 1}
    weight: np.ndarray | None = None  # (Y, X) float32 per-pixel loss weight
    source: int = 0  # index of the annotation folder (PatchSampler's sampling="source")


def _image_files(folder: Path) -> list[Path]:
    """Image-like files in `folder` (not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    """Map stem -> path; two files with one stem (a.tif, a.png) are ambiguous."""
    found: dict[str, Path] = {}
    for path in files:
        if path.stem in found:
            raise AnnotationError(
                f"annotation names must be unique, got {found[path.stem].name!r} and {path.name!r} (in {folder})"
            )
        found[path.stem] = path
    return found


def _match(images: dict[str, Path], masks: dict[str, Path], folder: Path) -> list[AnnotationPair]:
    """Pair images and masks by name; any unpaired file is an error naming it."""
    lonely_images = sorted(str(images[n]) for n in images.keys() - masks.keys())
    if lonely_images:
        raise AnnotationError(f"every image must have a mask, got images without a mask: {lonely_images} (in {folder})")
    lonely_masks = sorted(str(masks[n]) for n in masks.keys() - images.keys())
    if lonely_masks:
        raise AnnotationError(f"every mask must have an image, got masks without an image: {lonely_masks} (in {folder})")
    return [AnnotationPair(n, images[n], masks[n]) for n in sorted(images)]


def find_annotation_pairs(folder: str | os.PathLike[str]) -> list[AnnotationPair]:
    """Find the image/mask pairs in an annotation folder (either layout).

    Parameters
    ----------
    folder : str or PathLike
        Annotation folder.

    Returns
    -------
    list of AnnotationPair
        Sorted by name.

    Raises
    ------
    AnnotationError
        If the folder is missing or holds no pair, if an image has no mask or a mask no
        image, or if two files share a name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"annotations must be an existing folder, got {str(folder)!r}")
    if (folder / "images").is_dir():
        mask_dirs = [folder / name for name in MASK_FOLDERS if (folder / name).is_dir()]
        if len(mask_dirs) != 1:
            raise AnnotationError(
                f"annotations with an images/ folder must have exactly one of {MASK_FOLDERS} beside it, "
                f"got {[d.name for d in mask_dirs]} (in {folder})"
            )
        images = _by_stem(_image_files(folder / "images"), folder / "images")
        masks = _by_stem(_image_files(mask_dirs[0]), mask_dirs[0])
    else:
        files = _image_files(folder)
        images = _by_stem([p for p in files if not p.stem.endswith(MASK_SUFFIX)], folder)
        masks = _by_stem([p for p in files if p.stem.endswith(MASK_SUFFIX)], folder)
        masks = {stem[: -len(MASK_SUFFIX)]: path for stem, path in masks.items()}
    if not images and not masks:
        raise AnnotationError(
            f"annotations must hold image/mask pairs (images/X.tif + masks/X.tif, or X.tif + X_mask.tif), "
            f"got an empty folder (in {folder})"
        )
    return _match(images, masks, folder)


def find_source_pairs(sources: list[AnnotationSource]) -> list[AnnotationPair]:
    """The pairs of several annotation folders, in folder order, each with its folder's pixel size.

    A folder may be given again with another pixel size (the same pictures declared at two
    scales, so that a model learns both); the pairs of a repeated folder are named
    ``NAME@<pixel size>um``.

    Raises
    ------
    AnnotationError
        If a folder is bad (:func:`find_annotation_pairs`), its pixel size is not positive,
        a folder is repeated with the same pixel size, or two folders hold pairs of the same name.
    """
    pairs: list[AnnotationPair] = []
    seen: dict[str, Path] = {}
    sizes: dict[Path, list[float | None]] = {}
    for index, source in enumerate(sources):
        if source.pixel_size_um is not None and not source.pixel_size_um > 0:
            raise AnnotationError(f"annotation pixel size must be > 0, got {source.pixel_size_um!r} (in {source.folder})")
        key = Path(source.folder).resolve()
        if source.pixel_size_um in sizes.get(key, []):
            raise AnnotationError(f"an annotation folder may be repeated only with another pixel size, got "
                                  f"{source.pixel_size_um!r} twice (in {source.folder})")
        repeated = key in sizes
        sizes.setdefault(key, []).append(source.pixel_size_um)
        for pair in find_annotation_pairs(source.folder):
            name = f"{pair.name}@{source.pixel_size_um:g}um" if repeated and source.pixel_size_um else pair.name
            if repeated and source.pixel_size_um is None:
                name = f"{pair.name}@native"
            if name in seen:
                raise AnnotationError(f"annotation names must be unique across folders, got {name!r} in "
                                      f"{seen[name]} and in {source.folder}")
            seen[name] = source.folder
            pairs.append(replace(pair, name=name, pixel_size_um=source.pixel_size_um, source=index))
    return pairs


def resample_pair(image: np.ndarray, mask: np.ndarray | None, *, factor: float
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Resample an image (linear, anti-aliased when shrinking) and its mask by `factor`.

    Parameters
    ----------
    image : ndarray of shape (Y, X), real
    mask : ndarray of shape (Y, X), bool, or None
    factor : float
        Output size over input size (``source pixel size / target pixel size``).

    Returns
    -------
    image : ndarray of shape (round(Y * factor), round(X * factor)), float32
    mask : ndarray of the same shape, bool (area share >= 0.5), or None
    """
    from skimage.transform import rescale

    def scaled(array: np.ndarray) -> np.ndarray:
        return rescale(array.astype(np.float32), factor, order=1, anti_aliasing=factor < 1, preserve_range=True,
                       mode="reflect").astype(np.float32)

    return scaled(image), None if mask is None else scaled(mask) >= 0.5


def read_plane(path: Path) -> np.ndarray:
    """Read a TIFF or PNG file as one 2-D plane (colour images are averaged)."""
    try:
        if path.suffix.lower() == ".png":
            import imageio.v3 as iio

            data = np.asarray(iio.imread(path))
        else:
            import tifffile

            data = np.asarray(tifffile.imread(path))
    except (OSError, ValueError) as err:
        raise AnnotationError(f"could not read {path}: {err}") from err
    data = np.squeeze(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        data = data[..., :3].mean(axis=-1) if not np.array_equal(data[..., 0], data[..., 1]) else data[..., 0]
    if data.ndim != 2:
        raise AnnotationError(f"annotation files must be 2-D (Y, X) planes, got shape {data.shape} (in {path})")
    return data


def binarize_mask(mask: np.ndarray, *, kind: str = "auto", path: str = "mask") -> np.ndarray:
    """Turn a binary or label mask into a boolean foreground mask.

    Parameters
    ----------
    mask : ndarray of shape (Y, X), bool, integer or float
        Binary mask (0/1 or 0/255) or label image (0 = background).
    kind : {"auto", "binary", "labels"}
        ``"binary"`` accepts only 0/1 or 0/255 values; ``"labels"`` and ``"auto"`` take every
        value > 0 as foreground, but float masks must hold whole numbers.
    path : str
        Source file, for messages.

    Returns
    -------
    ndarray of shape (Y, X), bool

    Raises
    ------
    AnnotationError
        If the mask cannot be binarised (negative or fractional values, or more than two
        values when ``kind="binary"``).
    ValueError
        If `kind` is unknown.

    Examples
    --------
    >>> binarize_mask(np.array([[0, 255], [255, 0]], dtype=np.uint8)).astype(int)
    array([[0, 1],
           [1, 0]])
    >>> binarize_mask(np.array([[0, 3], [7, 0]]), kind="labels").astype(int)
    array([[0, 1],
           [1, 0]])
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")
    if mask.dtype == bool:
        return mask.copy()
    if not np.issubdtype(mask.dtype, np.number) or np.iscomplexobj(mask):
        raise AnnotationError(f"masks must be numeric, got dtype {mask.dtype} (in {path})")
    values = np.unique(mask)
    shown = values[:6].tolist()
    if kind == "binary":
        if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
            raise AnnotationError(
                f"binary masks must hold only 0/1 or 0/255, got values {shown}"
                f"{' ...' if values.size > 6 else ''} (in {path})"
            )
    elif (not np.all(np.isfinite(values))) or np.any(values < 0) or np.any(values != np.round(values)):
        raise AnnotationError(
            f"masks must be binary (0/1, 0/255) or label images (whole numbers >= 0) to binarise, got values "
            f"{shown}{' ...' if values.size > 6 else ''} (in {path})"
        )
    return mask > 0


def load_pair(pair: AnnotationPair, *, mask_kind: str = "auto", allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one pair; return the raw image and the boolean mask.

    Raises
    ------
    AnnotationError
        If sizes differ, the mask cannot be binarised, or it has no foreground (unless
        `allow_empty`).
    """
    image = read_plane(pair.image_path)
    raw_mask = read_plane(pair.mask_path)
    if image.shape != raw_mask.shape:
        raise AnnotationError(
            f"image and mask must have the same size, got {image.shape} for {pair.image_path} and "
            f"{raw_mask.shape} for {pair.mask_path}"
        )
    mask = binarize_mask(raw_mask, kind=mask_kind, path=str(pair.mask_path))
    if not allow_empty and not mask.any():
        raise AnnotationError(
            f"masks must contain foreground, got a mask with no foreground anywhere (in {pair.mask_path}); "
            f"remove the pair or allow empty masks (spheroseg train --allow-empty-masks, config key "
            f"'training.allow_empty_masks')"
        )
    return image, mask


def load_samples(
    pairs: list[AnnotationPair], *, normalization: dict, mask_kind: str = "auto",
    allow_empty: bool = False, border_weights: bool = False, pixel_size_um: float | None = None,
    windows: dict[tuple[int, str], dict] | None = None,
) -> list[Sample]:
    """Load, check, resample and normalise every pair; all errors come before any training.

    Parameters
    ----------
    pairs : list of AnnotationPair
    normalization : dict
        Spec for :func:`spheroseg.normalization.normalize_image`.
    mask_kind : {"auto", "binary", "labels"}
    allow_empty : bool
        Accept masks without foreground (pure background examples).
    border_weights : bool
        Precompute U-Net border weight maps (see :func:`spheroseg.training.loss.border_weight_map`).
    pixel_size_um : float, optional
        Training pixel size: pairs with a known, different pixel size are resampled to it
        (:func:`resample_pair`) before normalisation.
    windows : dict, optional
        (source, pair name) -> the normalisation window of the pair's time series
        (``"scope": "series"``); pairs without one use their own window.

    Returns
    -------
    list of Sample

    Raises
    ------
    AnnotationError
        If any pair is bad; the message names the files.
    """
    from spheroseg.normalization import normalize_image, validate_normalization
    from spheroseg.training.loss import border_weight_map

    normalization = validate_normalization(normalization, source="training settings")

    if not pairs:
        raise AnnotationError("annotations must hold at least one image/mask pair, got none")
    checked = [load_pair(pair, mask_kind=mask_kind, allow_empty=allow_empty) for pair in pairs]
    samples = []
    for pair, (image, mask) in zip(pairs, checked):
        if pixel_size_um is not None and pair.pixel_size_um is not None and pair.pixel_size_um != pixel_size_um:
            image, mask = resample_pair(image, mask, factor=pair.pixel_size_um / pixel_size_um)
        weight = border_weight_map(mask) if border_weights else None
        window = (windows or {}).get((pair.source, pair.name))
        samples.append(Sample(pair.name, normalize_image(image, normalization, window=window),
                              mask.astype(np.float32), weight, source=pair.source))
    return samples


def split_pairs(
    pairs: list[AnnotationPair], *, val_fraction: float = 0.2, val_names: list[str] | None = None, seed: int = 0,
    val_min_pairs: int = 2,
) -> tuple[list[AnnotationPair], list[AnnotationPair]]:
    """Split pairs into training and validation sets (by name, or a seeded random fraction).

    A random fraction holds out at least one pair, but only when there are `val_min_pairs`
    pairs or more; with fewer, every pair trains and none validates (named pairs always
    validate).

    Raises
    ------
    ValueError
        If a validation name is unknown, the fraction is outside [0, 1), `val_min_pairs` is
        below 2, or no training pair is left.

    Examples
    --------
    >>> pairs = [AnnotationPair(n, Path(n), Path(n)) for n in "abcde"]
    >>> train, val = split_pairs(pairs, val_names=["b"])
    >>> [p.name for p in train], [p.name for p in val]
    (['a', 'c', 'd', 'e'], ['b'])
    >>> [len(part) for part in split_pairs(pairs, val_fraction=0.2, val_min_pairs=6)]
    [5, 0]
    """
    if not isinstance(val_min_pairs, int) or isinstance(val_min_pairs, bool) or val_min_pairs < 2:
        raise ValueError(f"val_min_pairs must be an integer >= 2, got {val_min_pairs!r}")
    if val_names:
        known = {p.name for p in pairs}
        unknown = sorted(set(val_names) - known)
        if unknown:
            raise ValueError(f"validation names must be annotation names, got unknown {unknown} (known: {sorted(known)})")
        chosen = set(val_names)
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        count = 0
        if val_fraction > 0 and len(pairs) >= val_min_pairs:
            count = max(int(round(val_fraction * len(pairs))), 1)
        order = np.random.default_rng(seed).permutation(len(pairs))
        chosen = {pairs[i].name for i in order[:count]}
    train = [p for p in pairs if p.name not in chosen]
    if not train:
        raise ValueError(f"at least one annotation pair must remain for training, got all {len(pairs)} for validation")
    return train, [p for p in pairs if p.name in chosen]


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad a (Y, X) array so both sides are at least `size`."""
    pad_y, pad_x = max(0, size - array.shape[0]), max(0, size - array.shape[1])
    if pad_y == 0 and pad_x == 0:
        return array
    mode = "reflect" if min(array.shape) > 1 else "edge"
    return np.pad(array, ((pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)), mode=mode)


class PatchSampler:
    """Draw square patches, centred on a foreground pixel with probability `foreground_fraction`.

    Parameters
    ----------
    samples : list of Sample
        Training data; images smaller than `size` are reflect-padded.
    size : int
        Patch side in pixels.
    foreground_fraction : float
        Probability that a patch is centred on a random foreground pixel; otherwise its
        position is uniform.
    sampling : {"area", "source"}
        area: images are chosen with probability proportional to their area; source: each
        annotation folder (``Sample.source``) gets the same share of patches, its images
        proportional to their area (so large images in one folder do not crowd out the others).

    Raises
    ------
    ValueError
        If `samples` is empty, `size` < 1 or the fraction is outside [0, 1].
    """

    def __init__(self, samples: list[Sample], *, size: int, foreground_fraction: float = 0.5,
                 sampling: str = "area") -> None:
        if not samples:
            raise ValueError("samples must not be empty, got []")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"patch size must be a positive integer, got {size!r}")
        if not 0.0 <= foreground_fraction <= 1.0:
            raise ValueError(f"foreground_fraction must be in [0, 1], got {foreground_fraction!r}")
        if sampling not in SAMPLING_KINDS:
            raise ValueError(f"sampling must be one of {SAMPLING_KINDS}, got {sampling!r}")
        self.size = size
        self.foreground_fraction = foreground_fraction
        self.images = [_pad_to(s.image, size) for s in samples]
        self.masks = [_pad_to(s.mask, size) for s in samples]
        self.weights = [None if s.weight is None else _pad_to(s.weight, size) for s in samples]
        self.foreground = [np.flatnonzero(m > 0.5) for m in self.masks]
        areas = np.array([m.size for m in self.masks], dtype=np.float64)
        if sampling == "source":
            sources = np.array([s.source for s in samples])
            totals = {int(k): areas[sources == k].sum() for k in np.unique(sources)}
            areas = areas / np.array([totals[int(k)] * len(totals) for k in sources])
        self.probabilities = areas / areas.sum()

    def _corner(self, index: int, rng: np.random.Generator) -> tuple[int, int]:
        """Top-left corner of a patch in image `index`."""
        height, width = self.masks[index].shape
        foreground = self.foreground[index]
        if foreground.size and rng.random() < self.foreground_fraction:
            cy, cx = divmod(int(foreground[rng.integers(foreground.size)]), width)
            top, left = cy - self.size // 2, cx - self.size // 2
        else:
            top, left = int(rng.integers(height - self.size + 1)), int(rng.integers(width - self.size + 1))
        return int(np.clip(top, 0, height - self.size)), int(np.clip(left, 0, width - self.size))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return one (image, mask, weight) patch, each of shape (size, size) float32 (weight may be None)."""
        index = int(rng.choice(len(self.masks), p=self.probabilities))
        top, left = self._corner(index, rng)
        window = (slice(top, top + self.size), slice(left, left + self.size))
        weight = self.weights[index]
        return (self.images[index][window].copy(), self.masks[index][window].copy(),
                None if weight is None else weight[window].copy())
