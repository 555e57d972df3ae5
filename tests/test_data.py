import gzip
import shutil
from pathlib import Path

import pytest

from shared import course_data, data_registry
from shared.data_registry import DataError


def test_every_mirrored_file_is_found_and_verified():
    for name, info in data_registry.REGISTRY.items():
        for key in info.files:
            if (name, key) == ("ag_news", "train"):
                continue  # not in the offline mirror
            assert data_registry.data_file(name, key).is_file()


def test_loaders_return_the_published_sizes():
    sst2 = course_data.load_sst2()
    assert (len(sst2["train"]), len(sst2["dev"])) == (67349, 872)
    trec = course_data.load_trec()
    assert (len(trec["train"]), len(trec["test"])) == (5452, 500)
    assert len(course_data.load_sms_spam()) == 5574
    assert len(course_data.load_multi30k("test_2016_flickr", "de")) == 1000
    train, val = course_data.split_train_val_text(data_registry.read_text("tinyshakespeare"))
    assert len(train) + len(val) == 1115394 and len(val) == 111540


def test_sms_split_is_balanced_and_fixed():
    splits = course_data.load_sms_spam_balanced()
    assert [len(splits[k]) for k in ("train", "val", "test")] == [1045, 149, 300]
    assert sum(len(s) for s in splits.values()) == 2 * 747
    assert splits["test"].texts == course_data.load_sms_spam_balanced()["test"].texts


def test_missing_file_offline_is_one_clear_error(monkeypatch):
    with pytest.raises(DataError) as err:
        data_registry.data_file("ag_news", "train")
    message = str(err.value)
    assert "ag_news/train.csv" in message and "was not found in" in message and "LLM_OFFLINE" in message
    assert "LLM_DATA_DIR" in message  # the fix


def test_corrupt_file_is_named(tmp_path, monkeypatch):
    src = data_registry.data_file("trec", "test")
    bad = tmp_path / "trec" / "TREC_10.label"
    bad.parent.mkdir()
    shutil.copyfile(src, bad)
    with open(bad, "ab") as fh:
        fh.write(b"tampered\n")
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"TREC_10.label is corrupt: its sha256 is"):
        data_registry.data_file("trec", "test")


def test_malformed_file_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "sst2" / "dev.tsv"
    path.parent.mkdir()
    path.write_text("sentence\tlabel\ngood movie\t7\n")
    sha = data_registry.file_checksum(path)
    entry = data_registry.REGISTRY["sst2"].files["dev"]
    malformed = data_registry.DataFile(entry.path, "sha256:" + sha, entry.url)  # its own checksum: it verifies
    monkeypatch.setitem(data_registry.REGISTRY["sst2"].files, "dev", malformed)
    shutil.copyfile(data_registry.data_file("sst2", "train"), tmp_path / "sst2" / "train.tsv.gz")
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"dev.tsv line 2 is malformed"):
        course_data.load_sst2()


def test_download_form_is_found_in_the_cache(tmp_path, monkeypatch):
    """A file downloaded in its canonical form (SST-2's plain train.tsv) is used like the mirror's gzip."""
    cache = tmp_path / "cache"
    (cache / "sst2").mkdir(parents=True)
    with gzip.open(data_registry.data_file("sst2", "train"), "rb") as src:
        (cache / "sst2" / "train.tsv").write_bytes(src.read())
    monkeypatch.setenv("LLM_CACHE_DIR", str(cache))
    monkeypatch.setattr(data_registry, "REPO_ROOT", Path(tmp_path / "elsewhere" / "repo"))
    assert data_registry.data_file("sst2", "train") == cache / "sst2" / "train.tsv"


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set 'imdb'"):
        data_registry.data_file("imdb", "train")
