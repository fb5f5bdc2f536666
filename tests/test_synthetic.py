from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tifffile

from spheroseg.synthetic import Ellipse, generate_position, write_demo_experiment, write_training_set


def test_ellipse_truth_is_analytic():
    disk = Ellipse(0, 0, 10, 10, 0)
    assert disk.area() == pytest.approx(math.pi * 100)
    assert disk.perimeter() == pytest.approx(2 * math.pi * 10)
    # Ramanujan's second approximation is accurate to ~1e-10 relative here
    a, b = 30.0, 10.0
    h = ((a - b) / (a + b)) ** 2
    ramanujan = math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
    assert Ellipse(0, 0, a, b, 0.3).perimeter() == pytest.approx(ramanujan, rel=1e-6)


def test_position_is_deterministic_and_consistent():
    first = generate_position(seed=3, n_timepoints=3, shape=(96, 96), n_bodies=2, pixel_size_um=0.5)
    second = generate_position(seed=3, n_timepoints=3, shape=(96, 96), n_bodies=2, pixel_size_um=0.5)
    np.testing.assert_array_equal(first.images, second.images)
    assert first.images.dtype == np.uint16 and first.images.shape == (3, 96, 96)
    assert sorted(first.truth["object_id"].unique()) == [1, 2]
    for row in first.truth.itertuples():
        mask_area = (first.masks[row.timepoint] == row.object_id).sum() * 0.25
        assert mask_area == pytest.approx(row.area_um2, rel=0.03)
    grows = first.truth.groupby("object_id")["area_um2"].apply(lambda s: s.is_monotonic_increasing)
    assert grows.all()


def test_bodies_are_brighter_than_background():
    position = generate_position(seed=0, n_timepoints=1, shape=(128, 128))
    inside = position.images[0][position.masks[0] > 0].mean()
    outside = position.images[0][position.masks[0] == 0].mean()
    assert inside > 3 * outside


def test_artefact_changes_only_its_frame():
    clean = generate_position(seed=1, n_timepoints=3, shape=(128, 128))
    dirty = generate_position(seed=1, n_timepoints=3, shape=(128, 128), artefact_timepoint=1)
    np.testing.assert_array_equal(clean.masks, dirty.masks)
    assert (dirty.images[1].astype(float) > 1500).sum() > (clean.images[1].astype(float) > 1500).sum()


def test_demo_experiment_files(tmp_path):
    write_demo_experiment(tmp_path, positions={"well A1 (ctrl) ü": 1}, n_timepoints=2, shape=(96, 96),
                          pixel_size_um=0.65, time_interval_s=300)
    with tifffile.TiffFile(tmp_path / "well A1 (ctrl) ü.ome.tif") as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (2, 96, 96)
        assert 'PhysicalSizeX="0.65"' in tif.ome_metadata and 'TimeIncrement="300' in tif.ome_metadata
    truth = pd.read_csv(tmp_path / "ground_truth" / "well A1 (ctrl) ü.csv")
    assert list(truth["time_s"]) == [0, 300]
    assert tifffile.imread(tmp_path / "ground_truth" / "well A1 (ctrl) ü_masks.tif").shape == (2, 96, 96)


def test_training_set_pairs(tmp_path):
    write_training_set(tmp_path, n_images=3, shape=(64, 64))
    for name in ("000.tif", "001.tif", "002.tif"):
        mask = tifffile.imread(tmp_path / "masks" / name)
        assert set(np.unique(mask)) <= {0, 1} and mask.any()
        assert tifffile.imread(tmp_path / "images" / name).shape == (64, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_timepoints": 0}, "n_timepoints must be >= 1"), ({"n_timepoints": 1, "n_bodies": 0}, "n_bodies must be >= 1"),
     ({"n_timepoints": 1, "n_bodies": 4, "shape": (64, 64)}, "could not place")],
    ids=["no-frames", "no-bodies", "too-crowded"],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_position(seed=0, **kwargs)


def _pixel_digest(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def test_demo_rendering_and_truth_stay_byte_identical():
    # The demo, its ground truth and many tests rely on this exact rendering: new training
    # modalities are separate functions, and these digests (made before they existed) must hold.
    position = generate_position(seed=np.random.SeedSequence([0, 1]), n_timepoints=2, shape=(96, 96), n_bodies=2)
    assert _pixel_digest(position.images) == "4c4f8e19b68a3770"
    assert _pixel_digest(position.masks) == "76a1304e2d2b395c"


def test_original_training_set_stays_byte_identical(tmp_path):
    # the previous default model's recipe (write_training_set without modalities) must not change
    write_training_set(tmp_path, n_images=2, shape=(64, 64), seed=1)
    assert _pixel_digest(tifffile.imread(tmp_path / "images" / "001.tif")) == "51e050942a884e07"
    assert _pixel_digest(tifffile.imread(tmp_path / "masks" / "001.tif")) == "51be639a9dd6cf3e"


@pytest.mark.parametrize("modality", ["fluorescence", "invasive", "brightfield", "phase"])
def test_training_frame_polarity_and_determinism(modality):
    from spheroseg.synthetic import training_frame

    bright, mask = training_frame(3, shape=(128, 128), modality=modality, polarity="bright")
    again, same_mask = training_frame(3, shape=(128, 128), modality=modality, polarity="bright")
    dark, dark_mask = training_frame(3, shape=(128, 128), modality=modality, polarity="dark")
    np.testing.assert_array_equal(bright, again)
    np.testing.assert_array_equal(mask, same_mask)
    np.testing.assert_array_equal(mask, dark_mask)  # the same scene either way round
    assert mask.dtype == bool and mask.any() and not mask.all()
    assert bright.dtype in (np.uint8, np.uint16) and bright.shape == (128, 128)
    background_bright, background_dark = np.median(bright[~mask]), np.median(dark[~mask])
    if modality != "phase":  # phase contrast: the halo, not the body, carries the contrast
        assert bright[mask].mean() > background_bright and dark[mask].mean() < background_dark


def test_invasive_frames_mark_shed_cells_as_foreground():
    from scipy import ndimage

    from spheroseg.synthetic import training_frame

    _, mask = training_frame(0, shape=(256, 256), modality="invasive")
    _, count = ndimage.label(mask)
    assert count > 10  # the body plus many separate shed cells, as the annotated spheroids


def test_modality_training_set_names_and_errors(tmp_path):
    write_training_set(tmp_path / "set", n_images=4, shape=(64, 64), modalities=("brightfield", "phase"))
    names = sorted(p.name for p in (tmp_path / "set" / "images").iterdir())
    assert names == ["brightfield_000.tif", "brightfield_002.tif", "phase_001.tif", "phase_003.tif"]
    assert set(np.unique(tifffile.imread(tmp_path / "set" / "masks" / "phase_001.tif"))) == {0, 1}
    with pytest.raises(ValueError, match="modalities must be a non-empty selection"):
        write_training_set(tmp_path / "bad", n_images=1, modalities=("xray",))


@pytest.mark.parametrize(("kwargs", "message"),
                         [({"modality": "xray"}, "modality must be one of"), ({"polarity": "grey"}, "polarity must be")],
                         ids=["modality", "polarity"])
def test_training_frame_bad_arguments(kwargs, message):
    from spheroseg.synthetic import training_frame

    with pytest.raises(ValueError, match=message):
        training_frame(0, shape=(64, 64), **kwargs)


def test_demo_kind_mixes_the_demo_rendering_with_modalities(tmp_path):
    from spheroseg.synthetic import demo_training_frame

    write_training_set(tmp_path / "set", n_images=3, shape=(64, 64), seed=4, modalities=("demo", "demo", "phase"))
    names = sorted(p.name for p in (tmp_path / "set" / "images").iterdir())
    assert names == ["demo_000.tif", "demo_001.tif", "phase_002.tif"]
    image, mask = demo_training_frame(np.random.SeedSequence([4, 5001]), shape=(64, 64))
    assert np.array_equal(tifffile.imread(tmp_path / "set" / "images" / "demo_001.tif"), image)
    assert np.array_equal(tifffile.imread(tmp_path / "set" / "masks" / "demo_001.tif"), mask)
    assert set(np.unique(mask)) <= {0, 1} and mask.any()
    # the demo frames differ from one another (each has its own seed)
    assert not np.array_equal(tifffile.imread(tmp_path / "set" / "images" / "demo_000.tif"), image)
