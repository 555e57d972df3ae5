import os
import tempfile

import pytest

# Tests never touch the network: a missing data file is an immediate, clear error.
os.environ["LLM_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
# Prepared token files go to a fresh folder, not the user's cache.
os.environ["LLM_CACHE_DIR"] = tempfile.mkdtemp(prefix="llm-stages-test-cache-")


@pytest.fixture(autouse=True)
def _fresh_checksum_cache(monkeypatch):
    """Each test verifies files anew, so a corrupted copy is always noticed."""
    import shared.data

    monkeypatch.setattr(shared.data, "_verified", set())
