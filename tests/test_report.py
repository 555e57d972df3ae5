"""The report: every metrics.json read into one pandas table, runs that differ only in their seed folded into
one row (mean ± std, the number of seeds), rendered as the markdown tables the READMEs show."""

import json
import math

import pytest

from shared.report import fold_seeds, load_runs, main, markdown_table

HEADER = ("| stage | model | preset | accuracy | macro-F1 | trained params | params | train s | device | seeds "
          "| command |")  # as in the README's classification tables


def record(runs_dir, run: str, **metrics) -> None:
    """A stage 1 run record as the trainer writes it, in runs_dir/stage1_mlp/<run>/metrics.json."""
    folder = runs_dir / "stage1_mlp" / run
    folder.mkdir(parents=True)
    base = {"stage": "stage1_mlp", "task": "classification", "dataset": "trec", "model": "MLP", "preset": "cpu",
            "seed": 1337, "params": 17_030_000, "device": "cpu", "steps": 100, "interrupted": False, "yours": False,
            "test_confusion_matrix": [[5, 1], [0, 4]], "machine": "x86_64 CPU x2",
            "command": f"python -m stage1_mlp.train --run_name {run}"}
    (folder / "metrics.json").write_text(json.dumps({**base, **metrics, "run": run}), encoding="utf-8")


@pytest.fixture
def runs_dir(tmp_path):
    record(tmp_path, "trec-cpu", test_accuracy=0.90, test_f1=0.88, train_seconds=4.0)
    record(tmp_path, "trec-cpu-s1", seed=1, test_accuracy=0.92, test_f1=0.89, train_seconds=5.0)
    record(tmp_path, "trec-wide-cpu", model="MLP wide", test_accuracy=0.95, test_f1=0.94, train_seconds=9.0)
    return tmp_path


def test_every_run_record_is_one_row(runs_dir):
    runs = load_runs(runs_dir)
    assert sorted(runs["run"]) == ["trec-cpu", "trec-cpu-s1", "trec-wide-cpu"]
    assert sorted(runs["seed"]) == [1, 1337, 1337]
    assert runs["test_perplexity"].isna().all()  # a score no run recorded is an empty column, not a KeyError


def test_two_seeds_of_one_configuration_fold_into_one_row_with_mean_std_and_n(runs_dir):
    folded = fold_seeds(load_runs(runs_dir)).set_index("run_without_seed")
    assert sorted(folded.index) == ["trec-cpu", "trec-wide-cpu"]  # the other model keeps its own row
    seeds = folded.loc["trec-cpu"]
    assert seeds["seeds"] == 2 and seeds["test_accuracy n"] == 2
    assert seeds["test_accuracy mean"] == pytest.approx(0.91)
    assert seeds["test_accuracy std"] == pytest.approx(math.sqrt(2 * 0.01**2))  # sample std: n - 1 = 1
    assert seeds["command"] == "python -m stage1_mlp.train --run_name trec-cpu"  # the first run's
    alone = folded.loc["trec-wide-cpu"]
    assert alone["seeds"] == 1 and alone["test_accuracy mean"] == pytest.approx(0.95)
    assert math.isnan(alone["test_accuracy std"])


def test_the_report_renders_one_row_per_configuration(runs_dir, capsys):
    text = main(["--runs_dir", str(runs_dir)])
    lines = text.splitlines()
    assert lines[0].endswith("from 3 recorded runs (machines: cpu: x86_64 CPU x2).")
    table = lines[lines.index("### Classification (held-out split): trec") + 2:]
    assert table[:2] == [HEADER, "|" + "---|" * 11]
    assert table[2:4] == [
        "| stage1_mlp | MLP | cpu | 91.00 ± 1.41 | 88.50 ± 0.71 |  | 17.03M | 4.5 ± 0.7 | cpu | 2 "
        "| `python -m stage1_mlp.train --run_name trec-cpu` |",
        "| stage1_mlp | MLP wide | cpu | 95.00 | 94.00 |  | 17.03M | 9.0 | cpu | 1 "
        "| `python -m stage1_mlp.train --run_name trec-wide-cpu` |",
    ]
    assert len(table) == 4  # no other table: every run is a classification on trec
    assert (runs_dir / "report.md").read_text(encoding="utf-8") == text
    assert text in capsys.readouterr().out


def test_learner_parts_and_other_data_never_share_a_row(runs_dir):
    record(runs_dir, "trec-cpu-yours", yours=["bag_of_ngrams", "masked_mean"], test_accuracy=0.50, test_f1=0.50)
    record(runs_dir, "trec-cpu-yours-failing", yours=["masked_mean"], yours_failing=["masked_mean"],
           test_accuracy=0.30, test_f1=0.30)
    record(runs_dir, "sst2-cpu", dataset="sst2", test_accuracy=0.80, test_f1=0.79)
    text = main(["--runs_dir", str(runs_dir), "--task", "classification"])
    assert "| stage1_mlp | MLP (yours) | cpu | 50.00 | 50.00 |" in text  # yours is recorded as the parts' names
    assert "| stage1_mlp | MLP (yours, failing its check: masked_mean) | cpu | 30.00 |" in text
    assert "| stage1_mlp | MLP | cpu | 91.00 ± 1.41 |" in text  # the reference seeds' mean, the learner's run apart
    sst2 = text[text.index("held-out split): sst2"):text.index("held-out split): trec")]  # its own table
    assert "| 80.00 | 79.00 |" in sst2 and "91.00" not in sst2
    assert (runs_dir / "report-classification.md").is_file()
    assert "No recorded runs yet" in main(["--runs_dir", str(runs_dir), "--task", "translation"])


def test_markdown_table():
    assert markdown_table(["a", "b"], [["1", ""], ["x", "y"]]) == "| a | b |\n|---|---|\n| 1 |  |\n| x | y |"
