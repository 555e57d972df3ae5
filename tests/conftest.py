import os
import tempfile

import pytest

# Tests never touch the network: a missing data file is an immediate, clear error.
os.environ["LLM_OFFLINE"] = "1"
# Nor the Hugging Face hub. `datasets` and `huggingface_hub` read these once, when first imported, so they
# are set here, before any test imports them: an hf:NAME data set then fails at once, in this process.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
# Prepared token files go to a fresh folder, not the user's cache.
os.environ["LLM_CACHE_DIR"] = tempfile.mkdtemp(prefix="llm-stages-test-cache-")


@pytest.fixture(autouse=True)
def _fresh_checksum_cache(monkeypatch):
    """Each test verifies files anew, so a corrupted copy is always noticed."""
    import shared.data_registry

    monkeypatch.setattr(shared.data_registry, "_verified", set())
