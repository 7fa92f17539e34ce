"""The command line with careless or odd input (issue 15): rich-markup column names, tables that are
not tables, outputs that would overwrite the user's files, and two runs writing to one directory."""

import html
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import scanfit as sf
from scanfit.cli import app
from scanfit.results import run_dir

runner = CliRunner()
SCANFIT = Path(sys.executable).with_name("scanfit")


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.replace("│", " ").split())


def _frame(n=200, names=("[/x]", "[bold]city"), seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({names[0]: rng.normal(size=n), names[1]: rng.normal(size=n)})
    df["y"] = np.where(df[names[0]] - df[names[1]] + rng.logistic(size=n) > 0, "yes", "no")
    return df


@pytest.fixture(scope="module")
def markup_fit(tmp_path_factory):
    """`scanfit fit` on a table whose column names look like rich markup."""
    root = tmp_path_factory.mktemp("markup")
    _frame().to_csv(root / "m.csv", index=False)
    result, text = invoke("fit", root / "m.csv", "--target", "y", "--no-progress", "--out", root / "out")
    return root, result, text


def test_markup_like_column_names_print_as_they_are(markup_fit):
    root, result, text = markup_fit
    assert result.exit_code == 0, result.output
    assert "[/x]" in text and "[bold]city" in text  # in the summary table, not eaten as markup
    summary, text = invoke("summary", root / "out")
    assert summary.exit_code == 0, summary.output
    assert "Features (2): [/x], [bold]city" in text
    missing, text = invoke("fit", root / "m.csv", "--target", "[/nope]", "--out", root / "o2")
    assert missing.exit_code == 1
    assert "Error: The target column '[/nope]' is not in the table; its columns are ['[/x]', '[bold]city', 'y']" in text
    pred, text = invoke("predict", root / "out", root / "m.csv")
    assert pred.exit_code == 0 and pred.output.splitlines()[0] == "[/x],[bold]city,y,prob_yes,predicted"


@pytest.mark.parametrize("make, message", [
    (lambda d: d.mkdir(), "The table '{p}' is a directory with no *.parquet files (names starting with '_' or '.' "
                          "are skipped); give a CSV or Parquet file, or a directory of Parquet files."),
    (lambda d: d.write_text(""), "The table '{p}' is an empty file; give a table with a header and rows."),
    (lambda d: _frame().head(0).to_csv(d, index=False),
     "The table has no rows (only a header), so the target column 'y' is empty; give a table with rows to fit."),
    (lambda d: _frame().head(1).to_csv(d, index=False),
     "The target column 'y' holds one value, 'no', in the table's only row; there is nothing to learn. A fit needs "
     "at least two distinct values (two classes): add rows with other values or choose another target column."),
    (lambda d: _frame().assign(y="yes").to_csv(d, index=False),
     "The target column 'y' holds one value, 'yes', in all 200 rows; there is nothing to learn."),
    (lambda d: os.mkfifo(d), "The table '{p}' is not a regular file (a FIFO or a device)"),
])
def test_tables_that_cannot_be_fitted_say_why(tmp_path, make, message):
    path = tmp_path / "t.csv"
    make(path)
    result, text = invoke("fit", path, "--target", "y", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert message.format(p=path) in text, text
    assert not (tmp_path / "out").exists()


def test_predict_out_must_be_a_file_in_an_existing_folder(markup_fit, tmp_path):
    root = markup_fit[0]
    (tmp_path / "adir").mkdir()
    cases = [(tmp_path / "adir", f"The '--out' option names the directory '{tmp_path / 'adir'}'; give a file path "
                                 f"such as '{tmp_path / 'adir' / 'predictions.csv'}'."),
             (tmp_path / "nodir" / "x.csv", f"The folder '{tmp_path / 'nodir'}' of '--out' does not exist; create it "
                                            f"first"),
             (tmp_path / "x.json", "The '--out' option must end in one of ['.csv', '.parquet', '.pq', '.tsv', '.txt']")]
    for out, message in cases:
        result, text = invoke("predict", root / "out", root / "m.csv", "--out", out)
        assert result.exit_code == 1 and message in text, text
    result, _ = invoke("predict", root / "out", root / "m.csv", "--out", tmp_path / "adir" / "p.tsv")
    assert result.exit_code == 0 and pd.read_csv(tmp_path / "adir" / "p.tsv", sep="\t").shape == (200, 5)


def test_predict_refuses_to_overwrite_input_columns(markup_fit, tmp_path):
    root = markup_fit[0]
    for column in ("prob_yes", "predicted"):
        _frame().assign(**{column: 1.0}).to_csv(tmp_path / "t.csv", index=False)
        result, text = invoke("predict", root / "out", tmp_path / "t.csv")
        assert result.exit_code == 1
        assert (f"The table already has the columns ['{column}'], which predict writes (['prob_yes', 'predicted']); "
                f"rename or drop them in the table first") in text


def test_fit_out_refuses_a_directory_with_the_users_files_unless_forced(markup_fit, tmp_path):
    root = markup_fit[0]
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.html").write_text("my own report")
    result, text = invoke("fit", root / "m.csv", "--target", "y", "--no-progress", "--out", out)
    assert result.exit_code == 1
    assert (f"The '--out' directory '{out}' holds files that scanfit did not write (report.html); choose a new or "
            f"empty directory, or pass --force") in text
    assert (out / "report.html").read_text() == "my own report" and sorted(os.listdir(out)) == ["report.html"]
    (out / "notes.txt").write_text("keep me")
    result, text = invoke("fit", root / "m.csv", "--target", "y", "--no-progress", "--out", out, "--force")
    assert result.exit_code == 1  # --force replaces scanfit's own files only: this report.html is the user's
    assert f"The '--out' directory '{out}' holds files of yours where scanfit writes its outputs (report.html)" in text
    assert (out / "report.html").read_text() == "my own report"
    (out / "report.html").rename(out / "my-report.html")
    result, text = invoke("fit", root / "m.csv", "--target", "y", "--no-progress", "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "keep me" and (out / "my-report.html").read_text() == "my own report"
    assert sf.load(out / "model").status.code == "converged"


def test_fit_out_replaces_an_earlier_fit_as_one_piece(markup_fit):
    root = markup_fit[0]
    out = root / "out"  # written by the fixture's fit
    marker = json.loads((out / run_dir.MARKER).read_text())
    assert {name.split("/")[0] for name in marker["files"]} == set(os.listdir(out)) - {run_dir.MARKER}
    assert {"model/model.json", "model/params.safetensors", "history.csv"} <= set(marker["files"])
    (out / "stale.png").write_text("not scanfit's")  # a file the marker does not list: the directory is the user's
    result, text = invoke("fit", root / "m.csv", "--target", "y", "--no-progress", "--out", out)
    assert result.exit_code == 1 and "holds files that scanfit did not write (stale.png)" in text
    (out / "stale.png").unlink()
    result, _ = invoke("fit", root / "m.csv", "--target", "y", "--no-progress", "--out", out, "--steps", "3")
    assert result.exit_code == 0, result.output
    assert sf.load(out / "model").config.steps == 3
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]  # no temporary or lock left


def test_concurrent_writers_leave_one_complete_run(tmp_path):
    """Each run writes its files slowly, one by one; whatever the interleaving, the directory ends up
    holding one run's files only (the swap happens under a lock, after the run's files are complete)."""
    out = tmp_path / "shared"

    def build(tag):
        def write(directory):
            paths = []
            for name in ("model", "history.csv", "report.html"):
                time.sleep(0.05)
                (directory / name).write_text(tag)
                paths.append(directory / name)
            return paths
        return write

    errors = []

    def run(tag):
        try:
            run_dir.write(out, build(tag))
        except Exception as err:  # pragma: no cover - shown by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(f"run{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    tags = {(out / name).read_text() for name in ("model", "history.csv", "report.html")}
    assert len(tags) == 1, tags
    assert sorted(os.listdir(tmp_path)) == ["shared"]


def test_two_scanfit_fits_to_one_directory_do_not_mix(tmp_path):
    for i in (0, 1):
        _frame(n=300, names=(f"a{i}", f"b{i}"), seed=i).to_csv(tmp_path / f"t{i}.csv", index=False)
    out = tmp_path / "same"
    procs = [subprocess.Popen([str(SCANFIT), "fit", str(tmp_path / f"t{i}.csv"), "--target", "y", "--no-progress",
                               "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in (0, 1)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    names = sf.load(out / "model").feature_names
    report = html.unescape((out / "report.html").read_text())
    history = pd.read_csv(out / "history.csv")
    assert names in (("a0", "b0"), ("a1", "b1"))
    assert f"features {list(names)}" in report and f"beta1_{names[0]}" in history.columns
    assert sorted(os.listdir(tmp_path)) == ["same", "t0.csv", "t1.csv"]


@pytest.mark.parametrize("name", ["p.csv", "p.tsv", "p.parquet"])
def test_predictions_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch, name):
    """``predict --out``: written beside the target and renamed into place; a failure mid-write leaves the
    earlier file as it was and no temporary file."""
    from scanfit import tables

    out = tmp_path / name
    pred = pd.DataFrame({"x": [1.5, 2.0], "predicted": [0.25, 0.75]})
    tables.write_predictions(pred, out)
    back = pd.read_parquet(out) if name.endswith(".parquet") else pd.read_csv(out, sep="\t" if name.endswith(".tsv") else ",")
    pd.testing.assert_frame_equal(back, pred)
    before = out.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet" if name.endswith(".parquet") else "to_csv", broken)
    with pytest.raises(OSError):
        tables.write_predictions(pred.assign(predicted=[0.0, 1.0]), out)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [name]
