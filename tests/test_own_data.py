"""Your own data: --dataset csv:/json:/parquet:/hf: for the classifiers, tsv: for translation.

Files are read through `datasets.load_dataset` on local paths (offline). Each bad file is one
sentence naming what is wrong: tested in process, and once as a user runs the command (exit 1, no traceback).
"""

import json

import pytest
from helpers import run_cli
from test_robustness import one_error, one_sentence, refused_flag

from shared.classification_data import load_classification
from shared.own_data import dataset_slug
from stage1_mlp import train as stage1_train
from stage3_attention_seq2seq import train as stage3_train
from stage6_finetune_cls import train as stage6_train

SPAM = ["WIN a free prize now, call", "Claim your cash reward today", "URGENT! You won a holiday, txt YES"]
HAM = ["See you at lunch tomorrow", "Can you pick up milk on the way home", "Running late, start without me"]


def messages(n: int = 60) -> list[tuple[str, str]]:
    rows = []
    for i in range(n):
        pool = SPAM if i % 2 else HAM
        rows.append((f"{pool[i % 3]} {i}", "spam" if i % 2 else "ham"))
    return rows


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    rows = messages()
    (root / "sms.csv").write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    (root / "sms.jsonl").write_text("".join(json.dumps({"body": t, "tag": y}) + "\n" for t, y in rows),
                                    encoding="utf-8")
    import pandas as pd

    pd.DataFrame({"text": [t for t, _ in rows], "label": [int(y == "spam") for _, y in rows]}).to_parquet(
        root / "sms.parquet")
    split = ["test" if i < 10 else "val" if i < 20 else "train" for i in range(len(rows))]
    (root / "split.csv").write_text("text,label,split\n" + "".join(
        f'"{t}",{y},{s}\n' for (t, y), s in zip(rows, split)), encoding="utf-8")
    return root


def test_each_format_loads_with_a_documented_split_and_sorted_labels(files):
    csv = load_classification(f"csv:{files / 'sms.csv'}")
    assert [len(csv[s]) for s in ("train", "val", "test")] == [48, 6, 6]  # the fixed 80 / 10 / 10 shuffle
    assert csv["train"].label_names == ["ham", "spam"]
    again = load_classification(f"csv:{files / 'sms.csv'}", seed=7)  # the split does not follow --seed
    assert again["test"].texts == csv["test"].texts
    jsonl = load_classification(f"json:{files / 'sms.jsonl'}", text_column="body", label_column="tag")
    assert jsonl["test"].texts == csv["test"].texts and jsonl["test"].labels == csv["test"].labels
    parquet = load_classification(f"parquet:{files / 'sms.parquet'}")
    assert parquet["train"].label_names == ["0", "1"] and parquet["test"].labels == csv["test"].labels
    own_split = load_classification(f"csv:{files / 'split.csv'}")
    assert [len(own_split[s]) for s in ("train", "val", "test")] == [40, 10, 10]
    assert dataset_slug(f"csv:{files / 'sms.csv'}") == "csv-sms"


def test_stage1_and_stage6_train_on_a_csv_and_keep_the_label_names(files, tmp_path):
    data = f"csv:{files / 'sms.csv'}"
    record = stage1_train.main(["--preset", "tiny", "--dataset", data, "--out_dir", str(tmp_path / "s1")])
    assert record["dataset"] == data and record["test_accuracy"] >= 0.5
    record = stage6_train.main(["--preset", "tiny", "--task", data, "--init_from", "random",
                                "--random_shape", "2,2,32,32", "--out_dir", str(tmp_path / "s6")])
    assert record["dataset"] == data
    from shared.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "s6" / "best.pt", required=("label_names",))["label_names"] == ["ham", "spam"]


def test_stage3_translates_your_own_tsv(tmp_path):
    pairs = [(f"a red car {i}", f"une voiture rouge {i}") for i in range(60)]
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    record = stage3_train.main(["--preset", "tiny", "--dataset", f"tsv:{path}", "--out_dir", str(tmp_path / "s3")])
    assert record["dataset"].startswith(f"tsv:{path}") and "test_bleu" in record


def test_bad_files_are_one_sentence(files, tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    (tmp_path / "test_only.csv").write_text(
        "text,label,split\n" + "".join(f"t{i},{'a' if i % 2 else 'b'},train\n" for i in range(6))
        + "t9,c,test\nt8,a,val\n", encoding="utf-8")
    tiny = ["--preset", "tiny", "--out_dir", str(tmp_path / "run")]
    cases = [
        (["--dataset", f"csv:{files / 'sms.csv'}", "--text_column", "message"], "has no column 'message'"),
        (["--dataset", f"csv:{tmp_path / 'empty.csv'}"], "is empty"),
        (["--dataset", f"csv:{tmp_path / 'test_only.csv'}"], "label 'c' is in the test split but never in train"),
        (["--dataset", f"json:{files / 'sms.csv'}"], "could not be read as JSON"),
        (["--dataset", f"csv:{tmp_path / 'missing.csv'}"], "does not exist"),
        (["--dataset", "hf:someone/no-such-data"], "could not load 'someone/no-such-data' from the Hugging Face hub"),
    ]
    for flags, words in cases:  # the same run folder each time: a failed run leaves it free for the next
        with one_sentence(words):
            stage1_train.main([*tiny, *flags])
    refused_flag(stage1_train.main, [*tiny, "--dataset", "xml:foo.xml"], "your own data as csv:PATH", capsys)


def test_a_bad_tsv_is_one_sentence_from_the_command_line(tmp_path):
    (tmp_path / "bad.tsv").write_text("one\tun\ntwo without a tab\n", encoding="utf-8")
    done = run_cli("stage3_attention_seq2seq.train", "--preset", "tiny", "--dataset", f"tsv:{tmp_path / 'bad.tsv'}",
                   "--out_dir", str(tmp_path / "run"))
    one_error(done, 1, "line 2 is not source<TAB>target")  # stage 3's train.py as a user runs it
