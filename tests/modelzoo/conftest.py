"""Fixtures of the bioimage.io tests: exported packages, the optional extra, a guard that
nothing goes online (helpers live in zoo_helpers.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from zoo_helpers import train_percentile_unet, write_tiny_model


@pytest.fixture
def offline(monkeypatch):
    """Fail any attempt to resolve a host name or open a network connection."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture(scope="session")
def bioimageio_core():
    """bioimageio.core, or skip: the extra is optional (CI installs it)."""
    return pytest.importorskip("bioimageio.core")


@pytest.fixture(scope="session")
def unet_model(tmp_path_factory) -> Path:
    """A U-Net of the default's architecture with percentile normalisation (zoo_helpers)."""
    return train_percentile_unet(tmp_path_factory.mktemp("unet") / "default.pt")


@pytest.fixture(scope="session")
def unet_package(tmp_path_factory, bioimageio_core, unet_model) -> Path:
    """That U-Net exported once (test_model run by the export)."""
    from spheroseg.modelzoo.export import export_bioimageio

    folder = tmp_path_factory.mktemp("default-package")
    summary = export_bioimageio(unet_model, folder / "default.zip")
    assert summary["test"]["status"] == "passed", summary
    return folder / "default.zip"


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory, bioimageio_core) -> Path:
    """A tiny model's package without test_model (for quick edits of its description)."""
    from spheroseg.modelzoo.export import export_bioimageio

    folder = tmp_path_factory.mktemp("tiny-package")
    model = write_tiny_model(folder / "model")
    export_bioimageio(model, folder / "tiny.zip", test=False)
    return folder / "tiny.zip"
