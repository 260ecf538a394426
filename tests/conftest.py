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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread, and the test machine's cores are shared.
    Use in a module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def sync_op_counter():
    """A dispatch mode that records the operations that make a GPU step wait for the device
    (``nonzero``, ``.item()``, boolean-mask selection); ``mode.names`` lists them in order."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Syncs(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.names: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split(".")[0]
            if name in ("nonzero", "_local_scalar_dense", "masked_select", "is_nonzero", "item"):
                self.names.append(name)
            return func(*args, **(kwargs or {}))

    return Syncs()
