"""Training loop: schedule, determinism, early stopping, time budget and checkpoint resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spheroseg.training.augment import AugmentConfig
from spheroseg.training.data import find_annotation_pairs, load_samples
from spheroseg.training.loop import CHECKPOINT_NAME, TrainConfig, lr_factor, train_model
from spheroseg.unet import UNet

TINY = dict(epochs=2, steps_per_epoch=2, batch_size=2, patch_size=32, device="cpu", patience=0)


@pytest.fixture
def samples(annotations):
    loaded = load_samples(find_annotation_pairs(annotations), normalization={"kind": "percentile"})
    return loaded[:4], loaded[4:]


def _train(samples, seed=0, checkpoint_dir=None, fingerprint="", **settings):
    torch.manual_seed(seed)
    model = UNet(depth=2, base_width=4)
    config = TrainConfig(**dict(TINY, seed=seed, **settings))
    return train_model(model, *samples, config, AugmentConfig(), divisor=4, checkpoint_dir=checkpoint_dir,
                       fingerprint=fingerprint, progress=False)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_lr_schedule_warms_up_then_decays():
    values = [lr_factor(step, total=100, warmup=10, final=0.1) for step in range(101)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:])) and values[-1] == pytest.approx(0.1)


def test_same_seed_gives_same_weights_on_cpu(samples):
    first, second = _train(samples), _train(samples)
    assert _same_weights(first.model, second.model)
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]


def test_channels_last_trains_the_same_model_and_returns_contiguous_weights(samples):
    """NHWC training (the default, about 1.5x faster per CPU step) changes only the summation
    order: the weights stay within float rounding of NCHW training, and the returned model is
    contiguous as an exported model must be."""
    nhwc, nchw = _train(samples), _train(samples, channels_last=False)
    assert all(value.is_contiguous() for value in nhwc.model.state_dict().values())
    conv = next(value for value in nhwc.model.state_dict().values() if value.dim() == 4 and value.shape[1] > 1)
    assert not conv.contiguous(memory_format=torch.channels_last).is_contiguous()  # a layout that can differ
    for (name, a), b in zip(nhwc.model.state_dict().items(), nchw.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4), name
    assert [r["train_loss"] for r in nhwc.history] == pytest.approx([r["train_loss"] for r in nchw.history], rel=1e-4)


def test_other_seed_gives_other_weights(samples):
    assert not _same_weights(_train(samples, seed=0).model, _train(samples, seed=1).model)


def test_history_and_best_epoch(samples):
    result = _train(samples, epochs=3)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert all(0.0 <= row["val_iou"] <= 1.0 for row in result.history)
    best = max(result.history, key=lambda row: row["val_iou"])
    assert result.best_metrics["val_iou"] == best["val_iou"]
    assert result.stop_reason == "reached 3 epochs"


def test_early_stopping(samples):
    result = _train(samples, epochs=10, patience=2, min_delta=1.0)  # no gain can exceed 1.0
    assert len(result.history) == 3 and result.stop_reason.startswith("early stopping")


def test_time_budget_stops_after_one_step(samples):
    result = _train(samples, epochs=5, max_minutes=1e-9)
    assert len(result.history) == 1 and result.stop_reason.startswith("time budget")


def test_without_validation_keeps_last_epoch(samples):
    result = _train((samples[0], []), epochs=2)
    assert result.best_epoch == 2 and np.isnan(result.history[-1]["val_iou"])


@pytest.mark.parametrize(("frozen", "stats_kept"), [(True, True), (False, False)], ids=["frozen", "updated"])
def test_frozen_norm_keeps_batch_norm_statistics_but_trains_the_rest(samples, frozen, stats_kept):
    torch.manual_seed(0)
    start = UNet(depth=2, base_width=4)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    result = train_model(start, *samples, TrainConfig(**dict(TINY, frozen_norm=frozen)), AugmentConfig(),
                         divisor=4, progress=False)
    after = result.model.state_dict()
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats) == stats_kept
    assert not torch.equal(before["head.weight"], after["head.weight"])
    norm_scales = [k for k in before if k.endswith(".1.weight")]  # BatchNorm2d scale after each first conv
    assert norm_scales and not all(torch.equal(before[k], after[k]) for k in norm_scales)


def test_resume_goes_on_from_the_checkpoint(samples, tmp_path):
    interrupted = _train(samples, epochs=3, max_minutes=1e-9, checkpoint_dir=tmp_path, fingerprint="f")
    assert len(interrupted.history) == 1
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["epoch"] == 1
    resumed = _train(samples, epochs=3, checkpoint_dir=tmp_path, fingerprint="f")
    assert resumed.resumed_from_epoch == 1
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert resumed.history[0] == interrupted.history[0]


def test_finished_checkpoint_is_reused_without_training(samples, tmp_path):
    done = _train(samples, checkpoint_dir=tmp_path, fingerprint="f")
    again = _train(samples, seed=5, checkpoint_dir=tmp_path, fingerprint="f")
    assert again.resumed_from_epoch == 2 and _same_weights(done.model, again.model)


def test_checkpoint_of_other_data_is_ignored(samples, tmp_path, caplog):
    _train(samples, epochs=1, checkpoint_dir=tmp_path, fingerprint="old")
    result = _train(samples, epochs=1, checkpoint_dir=tmp_path, fingerprint="new")
    assert result.resumed_from_epoch == 0 and "belongs to other data" in caplog.text


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"epochs": 0}, "epochs must be a positive integer"), ({"patch_size": 30}, "multiple of 4"),
     ({"learning_rate": 0.0}, "learning_rate must be > 0"), ({"max_minutes": -1.0}, "max_minutes must be > 0")],
    ids=["zero-epochs", "patch-not-multiple", "zero-lr", "negative-minutes"],
)
def test_bad_settings(samples, settings, message):
    with pytest.raises(ValueError, match=message):
        _train(samples, **settings)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_precision_training_on_cuda_learns_and_returns_a_cpu_usable_model(samples):
    # The GPU path: float16 autocast with the gradient scaler, weights moved back for export.
    result = _train(samples, epochs=3, steps_per_epoch=4, device="cuda", amp=True)
    losses = [row["train_loss"] for row in result.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(0.0 <= row["val_iou"] <= 1.0 for row in result.history)
    with torch.inference_mode():
        output = result.model.to("cpu")(torch.zeros(1, 1, 32, 32))
    assert output.shape == (1, 1, 32, 32)
