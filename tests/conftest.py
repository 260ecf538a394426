"""Shared test fixtures. Real annotation files live in ``../shared`` beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"
TESTVECTORS = SHARED / "testvectors"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"the shared data folder is missing: {DATA}")
    return DATA


@pytest.fixture(scope="session")
def testvectors() -> Path:
    if not TESTVECTORS.is_dir():
        pytest.fail(f"the shared test vectors are missing: {TESTVECTORS}")
    return TESTVECTORS
