"""Shared test fixtures: real reference servers (tiny, smollm2), the stock-server stand-in, the GSM8K
split. Everything else the tests share is in hookbench.testing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hookbench.evaluation.config_schema  # noqa: F401  (registers the config schema before any test composes)
from hookbench.testing.browser import install_chromium
from hookbench.testing.repo import GSM8K
from hookbench.testing.servers import start_server, stop_server


@pytest.fixture
def gsm8k_path() -> Path:
    if not GSM8K.exists():
        pytest.skip(f"GSM8K test split not found at {GSM8K}")
    return GSM8K


@pytest.fixture
def stock_server():
    """hookbench.testing.stock_server.StockServer on the tiny model: the users' stock server, fresh counters and knobs."""
    from hookbench.testing.stock_server import StockServer

    with StockServer("tiny") as server:
        yield server


@pytest.fixture
def stock_smol():
    """The stock-server stand-in on the real smollm2 model (loaded once per process)."""
    from hookbench.testing.stock_server import StockServer

    with StockServer("smollm2") as server:
        yield server


@pytest.fixture(scope="session")
def tiny():
    server = start_server("tiny")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def smol():
    server = start_server("smollm2")
    yield server
    stop_server(server)


@pytest.fixture
def tiny_clean(tiny):
    """The tiny server, unpatched before and after the test."""
    tiny.clean()
    yield tiny
    tiny.clean()


@pytest.fixture
def smol_clean(smol):
    smol.clean()
    yield smol
    smol.clean()


@pytest.fixture(autouse=True)
def _tracking_uri_does_not_leak():
    """mlflow.set_tracking_uri (a test's, or hookbench's own in-process) exports MLFLOW_TRACKING_URI,
    which the config then reads: each test leaves the variable as it found it."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


SMOLLM2 = {"smol", "smol_clean", "stock_smol"}  # fixtures that load the real smollm2 model


def pytest_collection_modifyitems(items):
    """A test on the real smollm2 model is slow (outside the `-m "not slow"` tier) wherever it is."""
    for item in items:
        if SMOLLM2 & set(getattr(item, "fixturenames", ())):
            item.add_marker("slow")


@pytest.fixture(scope="session")
def chromium():
    path = install_chromium()
    if path is None:
        reason = "Chromium is not installed and cannot be (needs root and apt-get: apt-get install chromium)"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    return path
