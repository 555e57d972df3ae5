import os

import pytest

# Tests never touch the network: a missing data file is an immediate, clear error.
os.environ["LLM_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _fresh_checksum_cache(monkeypatch):
    """Each test verifies files anew, so a corrupted copy is always noticed."""
    import shared.data

    monkeypatch.setattr(shared.data, "_verified", set())
