"""Stage 1 end to end on the tiny preset, plus the model's fast-path parity."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from test_robustness import one_sentence

from shared.checkpoint import load_checkpoint
from shared.records import read_history
from shared.report import main as report_main
from stage1_mlp import baseline, evaluate
from stage1_mlp import train as stage1_train
from stage1_mlp.model import BagOfNgramsMLP


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_bag_fast_path_equals_teaching_path(sparse):
    torch.manual_seed(0)
    fast = BagOfNgramsMLP(50, 3, embed_dim=8, hidden_dim=16, embedding_bag=True, sparse=sparse).eval()
    slow = BagOfNgramsMLP(50, 3, embed_dim=8, hidden_dim=16, embedding_bag=False, sparse=sparse).eval()
    slow.load_state_dict(fast.state_dict())
    ids = torch.tensor([[4, 5, 6, 0, 0], [7, 0, 0, 0, 0], [8, 9, 10, 11, 12]])
    torch.testing.assert_close(fast(ids), slow(ids), rtol=0, atol=1e-6)
    fast(ids).sum().backward()
    slow(ids).sum().backward()
    torch.testing.assert_close(fast.embedding.weight.grad.to_dense(), slow.embedding.weight.grad.to_dense(),
                               rtol=0, atol=1e-6)


def test_padding_does_not_change_the_prediction():
    model = BagOfNgramsMLP(50, 2, embed_dim=8, hidden_dim=8).eval()
    short = torch.tensor([[4, 5, 6]])
    padded = torch.tensor([[4, 5, 6, 0, 0, 0, 0]])
    torch.testing.assert_close(model(short), model(padded))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stage1_mlp" / "trec-tiny"
    record = stage1_train.main(["--preset", "tiny", "--dataset", "trec", "--out_dir", str(out)])
    return out, record


def test_tiny_preset_trains_above_chance(tiny_run):
    out, record = tiny_run
    majority = 138 / 500  # DESC, the largest TREC test class
    assert record["test_accuracy"] > majority + 0.15
    history = json.loads((out / "metrics.json").read_text())
    weights = load_checkpoint(out / "best.pt")["model"]
    assert history["task"] == "classification" and history["params"] == sum(t.numel() for t in weights.values())
    for name in ("config.json", "history.csv", "curves.png", "best.pt", "last.pt"):
        assert (out / name).is_file()


def test_evaluate_reports_the_same_accuracy(tiny_run, capsys):
    out, record = tiny_run
    results = evaluate.main(["--model_path", str(out / "best.pt"), "--latency_samples", "20"])
    assert results["test"]["accuracy"] == pytest.approx(record["test_accuracy"])
    assert 1e-4 < results["ms_per_sample"] < 50  # one text through a small MLP on a CPU: milliseconds at most
    assert "true \\ pred" in capsys.readouterr().out


def test_baseline_and_report(tiny_run, capsys):
    out, _ = tiny_run
    runs_dir = out.parent.parent
    record = baseline.main(["--dataset", "trec", "--out_dir", str(runs_dir / "stage1_mlp" / "trec-tfidf-logreg")])
    assert record["test_accuracy"] > 0.8
    text = report_main(["--runs_dir", str(runs_dir)])
    assert "### Classification" in text and "TF-IDF" in text and "MLP over 1-2gram bag" in text
    assert (runs_dir / "report.md").read_text() == text
    assert "### Classification" not in report_main(["--runs_dir", str(runs_dir), "--task", "translation"])
    assert (runs_dir / "report.md").read_text() == text  # a filtered report goes to its own file


def test_resume_continues_a_finished_run(tiny_run, tmp_path):
    out, record = tiny_run
    run = tmp_path / "run"
    shutil.copytree(out, run)  # a copy: the other tests read the finished run as it is
    again = stage1_train.main(["--preset", "tiny", "--dataset", "trec", "--out_dir", str(run), "--resume",
                               "--max_steps", str(record["steps"] + 20)])
    assert again["steps"] == record["steps"] + 20 == load_checkpoint(run / "last.pt")["step"]
    finished, continued = read_history(out / "history.csv"), read_history(run / "history.csv")
    assert continued[:len(finished)] == finished and continued[-1]["step"] == record["steps"] + 20  # appended to


def test_corrupt_checkpoint_is_one_sentence_and_exit_1(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"garbage")
    out = subprocess.run([sys.executable, "-m", "stage1_mlp.evaluate", "--model_path", str(bad)],
                         capture_output=True, text=True, timeout=120)  # stage 1's evaluate as a user runs it
    assert out.returncode == 1
    assert out.stderr.startswith("error: checkpoint") and "is damaged" in out.stderr
    assert "Traceback" not in out.stderr


def test_unavailable_dataset_is_one_sentence(tmp_path):
    with one_sentence("ag_news/train.csv"):  # not in the offline mirror
        stage1_train.main(["--dataset", "ag_news", "--preset", "tiny", "--out_dir", str(tmp_path)])


def test_sms_spam_uses_the_shared_balanced_split(tmp_path):
    record = stage1_train.main(["--preset", "tiny", "--dataset", "sms_spam", "--out_dir", str(tmp_path / "sms")])
    assert sum(map(sum, record["test_confusion_matrix"])) == 300
    assert record["test_accuracy"] > 0.6  # balanced classes: chance is 0.5


def test_cuda_asked_for_without_cuda_is_one_sentence(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with one_sentence("CUDA is not available"):
        stage1_train.main(["--preset", "tiny", "--device", "cuda", "--out_dir", str(tmp_path)])


@pytest.mark.parametrize("dataset", ["trec", "sst2", "sms_spam"])
def test_the_baseline_holds_out_what_the_mlp_holds_out(dataset):
    """Compared on one split: the baseline fits on the train part the cpu preset's MLP trains on."""
    from shared.cli import parse_config
    from stage1_mlp.config import PRESETS, MLPConfig

    mlp = parse_config(MLPConfig, PRESETS, ["--dataset", dataset, "--preset", "cpu"])
    assert baseline.BaselineConfig(dataset=dataset).held_out == mlp.val_fraction
