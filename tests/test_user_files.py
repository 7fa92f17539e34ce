"""Nothing of the user's is lost or turned into a formula by what scanfit writes (issue 27's output items):
``--out`` keeps every file scanfit did not write (nested ones included, with ``--force`` too), the input
table is never an output, a full disk says so without a traceback, CSV cells cannot run in a spreadsheet,
and ``predict`` names the rows it cannot predict and can skip them."""

import errno
import json
import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scanfit.cli import app
from scanfit.results import run_dir
from scanfit.show import csv_cells

runner = CliRunner()
OUTPUTS = ("model/model.json", "model/params.safetensors", "history.csv", "report.html", "plot.png")


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())


def build(names=OUTPUTS, tag="new"):
    """A stand-in for the fit's outputs: ``names`` written under the directory, each holding ``tag``."""
    def write(directory):
        paths = []
        for name in names:
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_text(tag)
            paths.append(directory / name)
        return paths
    return write


def snapshot(top):
    """The files under ``top`` and their text (scanfit's manifest left out)."""
    return {str(p.relative_to(top)): p.read_text() for p in sorted(top.rglob("*")) if p.is_file()
            and p.name != run_dir.MARKER}


def test_force_replaces_only_the_files_scanfit_wrote(tmp_path):
    out = tmp_path / "B"
    (out / "model").mkdir(parents=True)
    (out / "model" / "__init__.py").write_text("mine")
    (out / "history.csv").write_text("my history")
    with pytest.raises(FileExistsError, match=r"holds files of yours where scanfit writes its outputs \(history.csv\)"):
        run_dir.write(out, build(), force=True)
    assert snapshot(out) == {"model/__init__.py": "mine", "history.csv": "my history"}
    (out / "history.csv").rename(out / "mine.csv")
    run_dir.write(out, build(tag="first"), force=True)
    manifest = json.loads((out / run_dir.MARKER).read_text())
    assert manifest["version"] == 2 and manifest["files"] == sorted(OUTPUTS)
    run_dir.write(out, build(OUTPUTS[:-1], tag="second"), force=True)  # no plot this time: the old one goes
    assert snapshot(out) == {"model/__init__.py": "mine", "mine.csv": "my history", **dict.fromkeys(OUTPUTS[:-1], "second")}
    assert sorted(os.listdir(tmp_path)) == ["B"]  # no temporary directory or lock left


def test_a_refit_keeps_a_file_the_user_added_inside_model(tmp_path):
    out = tmp_path / "B"
    run_dir.write(out, build(tag="first"))
    (out / "model" / "NOTES.md").write_text("notes")
    (out / "extra").mkdir()
    (out / "extra" / "a.txt").write_text("a")
    with pytest.raises(FileExistsError, match=r"did not write \(extra/, model/NOTES.md\); choose a new or empty"):
        run_dir.write(out, build(tag="second"))
    assert (out / "model" / "NOTES.md").read_text() == "notes" and (out / "history.csv").read_text() == "first"
    run_dir.write(out, build(tag="second"), force=True)
    assert (out / "model" / "NOTES.md").read_text() == "notes" and (out / "extra" / "a.txt").read_text() == "a"
    assert (out / "model" / "model.json").read_text() == "second"


def test_an_old_manifest_of_top_level_names_covers_only_the_models_files(tmp_path):
    out = tmp_path / "B"
    run_dir.write(out, build(tag="first"))
    (out / run_dir.MARKER).write_text(json.dumps({"written_by": "scanfit fit", "files": [
        "history.csv", "model", "plot.png", "report.html"]}))
    assert run_dir.foreign(out) == []
    (out / "model" / "NOTES.md").write_text("notes")
    assert run_dir.foreign(out) == ["model/NOTES.md"]


def test_a_tampered_manifest_or_a_symlink_never_reaches_a_users_file(tmp_path):
    out, theirs = tmp_path / "B", tmp_path / "theirs.csv"
    theirs.write_text("data")
    run_dir.write(out, build(tag="first"))
    (out / run_dir.MARKER).write_text(json.dumps({"version": 2, "files": [*OUTPUTS, "../theirs.csv", "/etc/hosts"]}))
    (out / "plot.png").unlink()
    os.symlink(theirs, out / "plot.png")  # scanfit's file swapped for a link to the user's data
    with pytest.raises(FileExistsError, match=r"did not write \(plot.png\)"):
        run_dir.write(out, build(OUTPUTS[:-1]))
    run_dir.write(out, build(OUTPUTS[:-1]), force=True)
    assert theirs.read_text() == "data" and os.path.islink(out / "plot.png")


def test_the_input_table_is_never_an_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"x1": [1.0, 2.0, 3.0], "y": [0, 1, 0]}).to_csv("history.csv", index=False)
    before = (tmp_path / "history.csv").read_bytes()
    result, text = invoke("fit", "history.csv", "--target", "y", "--out", ".", "--force", "--no-progress")
    assert result.exit_code == 1
    assert (f"The table 'history.csv' is where scanfit writes its history.csv in the '--out' directory "
            f"('{tmp_path}'); scanfit never writes over its input") in text
    assert (tmp_path / "history.csv").read_bytes() == before and sorted(os.listdir(tmp_path)) == ["history.csv"]
    run_dir.write("B", build())
    with pytest.raises(FileExistsError, match="The table 'B/plot.png' is where scanfit writes its plot.png"):
        run_dir.check("B", True, inputs=["B/plot.png"])  # an earlier fit's file, which a new fit replaces
    with pytest.raises(FileExistsError, match="The table 'B' is the '--out' directory"):
        run_dir.write("B", build(), force=True, inputs=["B"])


def test_a_full_disk_is_a_clear_error_and_the_old_outputs_stay(tmp_path):
    out = tmp_path / "B"
    run_dir.write(out, build(tag="old"))

    def full(directory):
        build(OUTPUTS[:2])(directory)
        raise OSError(errno.ENOSPC, "No space left on device", str(directory / "history.csv"))

    with pytest.raises(run_dir.OutputError) as caught:
        run_dir.write(out, full)
    assert str(caught.value) == (f"Cannot write the outputs to the '--out' directory '{out}': No space left on device "
                                 f"('{out / 'history.csv'}'). Its earlier contents are unchanged; free some space on "
                                 f"that disk, or choose another --out directory.")
    assert snapshot(out) == dict.fromkeys(OUTPUTS, "old") and sorted(os.listdir(tmp_path)) == ["B"]


def test_the_cli_reports_a_full_disk_without_a_traceback(tmp_path, monkeypatch):
    from scanfit import tables

    rng = np.random.default_rng(0)
    pd.DataFrame({"x1": rng.normal(size=40), "y": rng.normal(size=40)}).to_csv(tmp_path / "t.csv", index=False)

    def full(result, directory, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(directory / "history.csv"))

    monkeypatch.setattr(tables, "write_outputs", full)
    result, text = invoke("fit", tmp_path / "t.csv", "--target", "y", "--no-progress", "--out", tmp_path / "B")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (f"Error: Cannot write the outputs to the '--out' directory '{tmp_path / 'B'}': No space left on device "
            f"('{tmp_path / 'B' / 'history.csv'}')") in text
    assert "Rows: 40 gave the estimates; none were held out for validation" in text
    assert sorted(os.listdir(tmp_path)) == ["t.csv"]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    frame = pd.DataFrame({"=cmd": ["=HYPERLINK(\"http://x\")", "@SUM(1+1)", "+1+1", "-x", "\tt", "ok", "-1.5"],
                          "x": [-1.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                          "c": pd.Categorical(["-a", "b", "b", "b", "b", "b", "b"])})
    back = pd.read_csv(pd.io.common.StringIO(csv_cells.to_csv(frame)), keep_default_na=False)
    assert list(back.columns) == ["'=cmd", "x", "c"]
    assert back["'=cmd"].tolist() == ["'=HYPERLINK(\"http://x\")", "'@SUM(1+1)", "'+1+1", "'-x", "'\tt", "ok", "-1.5"]
    assert back["x"].tolist() == frame["x"].tolist() and back["c"][0] == "'-a"
    assert [csv_cells.cell(v) for v in ("\rr", "+2e3", ".5", -1.5, None)] == ["'\rr", "+2e3", ".5", -1.5, None]


def test_predict_quotes_formula_labels_and_skips_rows_with_missing_values(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x1": rng.normal(size=60), "x2": rng.normal(size=60)})
    frame["y"] = np.where(frame.x1 + rng.logistic(size=60) > 0, "=HYPERLINK(\"http://x\")", "@SUM(1+1)")
    frame.to_csv(tmp_path / "t.csv", index=False)
    result, _ = invoke("fit", tmp_path / "t.csv", "--target", "y", "--no-progress", "--out", tmp_path / "B")
    assert result.exit_code == 0, result.output
    frame.loc[[3, 7], "x1"] = np.nan
    frame.loc[7, "x2"] = np.inf
    frame.to_csv(tmp_path / "gap.csv", index=False)
    result, text = invoke("predict", tmp_path / "B", tmp_path / "gap.csv")
    assert result.exit_code == 1
    assert ("2 row(s) of the table have a missing or infinite feature value: rows 3, 7 (lines 5, 9 of a CSV with a "
            "header). Drop or impute them, or pass --skip-missing") in text
    result, _ = invoke("predict", tmp_path / "B", tmp_path / "gap.csv", "--skip-missing", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(pred.columns) == ["x1", "x2", "y", "prob_@SUM(1+1)", "predicted", "skipped"]
    assert set(pred["predicted"]) == {"'=HYPERLINK(\"http://x\")", "'@SUM(1+1)", ""}
    assert pred.loc[[3, 7], "predicted"].tolist() == ["", ""] and pred.loc[3, "prob_@SUM(1+1)"] == ""
    assert pred.loc[7, "skipped"] == "missing or infinite value in x1, x2" and set(pred["skipped"][:3]) == {""}
    assert pred["x2"][0] == frame["x2"][0]  # numbers stay numbers


@pytest.fixture(scope="module")
def small_fit():
    import _saved

    return _saved.fits()[0]


def test_save_refuses_a_directory_with_a_users_file_and_keeps_it(tmp_path, small_fit):
    import scanfit as sf

    path = small_fit.save(tmp_path / "m", summary="")
    manifest = json.loads((path / run_dir.MARKER).read_text())
    assert manifest["written_by"] == "result.save" and manifest["files"] == ["model.json", "params.safetensors"]
    (path / "NOTES.md").write_bytes(b"my notes\n")
    (path / "data").mkdir()
    (path / "data" / "x.csv").write_bytes(b"1,2\n")
    before = (path / "model.json").read_bytes()
    with pytest.raises(FileExistsError) as caught:
        small_fit.save(path, summary="")
    assert str(caught.value) == (f"Cannot save to '{path}': the directory holds files that scanfit did not write "
                                 f"(NOTES.md, data/), and saving replaces the whole directory. Move them elsewhere, "
                                 f"or save to a new directory.")
    assert (path / "NOTES.md").read_bytes() == b"my notes\n" and (path / "data" / "x.csv").read_bytes() == b"1,2\n"
    assert (path / "model.json").read_bytes() == before and sf.load(path) is not None
    (path / "NOTES.md").unlink()
    (path / "data" / "x.csv").unlink()
    (path / "data").rmdir()
    small_fit.save(path, summary="")  # scanfit's own files only: replaced
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_save_never_replaces_a_users_file_or_their_model_json(tmp_path, small_fit):
    theirs = tmp_path / "model"
    theirs.write_bytes(b"not a directory")
    with pytest.raises(FileExistsError, match=rf"Cannot save to '{theirs}': it is a file, and scanfit never replaces "
                                              rf"a file it did not write. Give the path of a directory"):
        small_fit.save(theirs, summary="")
    assert theirs.read_bytes() == b"not a directory"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model.json").write_bytes(b'{"mine": 1}')  # a model.json that scanfit did not write
    with pytest.raises(FileExistsError, match=r"did not write \(model.json\)"):
        small_fit.save(tmp_path / "d", summary="")
    assert (tmp_path / "d" / "model.json").read_bytes() == b'{"mine": 1}'


def test_save_replaces_a_model_saved_before_manifests_and_follows_a_link(tmp_path, small_fit):
    path = small_fit.save(tmp_path / "m", summary="")
    (path / run_dir.MARKER).unlink()  # as saved before manifests: model.json and params.safetensors only
    small_fit.save(path, summary="")
    (path / run_dir.MARKER).unlink()
    (path / "NOTES.md").write_text("notes")
    with pytest.raises(FileExistsError, match=r"did not write \(NOTES.md\)"):
        small_fit.save(path, summary="")
    (path / "NOTES.md").unlink()
    os.symlink(path, tmp_path / "link")
    small_fit.save(tmp_path / "link", summary="")  # the directory the link names; the link stays
    assert os.path.islink(tmp_path / "link") and (path / run_dir.MARKER).is_file()
    assert sorted(os.listdir(tmp_path)) == ["link", "m"]


def test_an_unreadable_folder_in_out_is_a_clear_error(tmp_path, monkeypatch):
    out = tmp_path / "B"
    run_dir.write(out, build(tag="old"))  # an earlier fit's outputs, then its model/ folder made unreadable
    scandir = os.scandir

    def unreadable(path="."):  # as chmod 000 would (the tests may run as root, which chmod does not stop)
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) == str(out / "model"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(run_dir.os, "scandir", unreadable)
    pd.DataFrame({"x1": [1.0, 2.0, 3.0], "y": [0.5, 1.0, 0.0]}).to_csv(tmp_path / "t.csv", index=False)
    result, text = invoke("fit", tmp_path / "t.csv", "--target", "y", "--out", out, "--no-progress")
    assert result.exit_code == 1 and "Traceback" not in result.output and "Likelihood" not in text  # before the fit
    assert (f"Error: Cannot read the folder '{out / 'model'}' (Permission denied); scanfit looks at every file in a "
            f"directory it writes to, so that it never replaces one of yours. Make the folder readable "
            f"(chmod u+rx '{out / 'model'}') or choose another directory.") in text
    monkeypatch.undo()
    assert snapshot(out) == dict.fromkeys(OUTPUTS, "old")


def test_demo_writes_only_into_a_directory_it_owns(tmp_path, monkeypatch):
    from scanfit import demo

    runs, run = [], demo.run
    monkeypatch.setattr(demo, "run", lambda **kw: runs or runs.extend(run(**kw)) or runs)  # the experiment runs once
    out = tmp_path / "D"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"notes")
    (out / "a_linear_history.csv").write_bytes(b"my history")
    result, text = invoke("demo", "--quick", "--only", "a", "--out", out)
    assert result.exit_code == 1 and not runs  # refused before the experiments
    assert (f"The '--out' directory '{out}' holds files that scanfit did not write (a_linear_history.csv, notes.txt); "
            f"choose a new or empty directory, or pass --force") in text
    result, text = invoke("demo", "--quick", "--only", "a", "--out", out, "--force")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "holds files of yours where scanfit writes its outputs (a_linear_history.csv)" in text
    assert sorted(os.listdir(out)) == ["a_linear_history.csv", "notes.txt"]
    assert (out / "a_linear_history.csv").read_bytes() == b"my history"
    (out / "a_linear_history.csv").rename(out / "mine.csv")
    result, text = invoke("demo", "--quick", "--only", "a", "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_bytes() == b"notes" and (out / "mine.csv").read_bytes() == b"my history"
    manifest = json.loads((out / run_dir.MARKER).read_text())
    assert manifest["written_by"] == "scanfit demo" and "report.html" in manifest["files"]
    assert set(os.listdir(out)) == {*manifest["files"], run_dir.MARKER, "notes.txt", "mine.csv"}


def test_predict_names_and_skips_rows_with_a_missing_text_value_of_a_formula_model(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x1": rng.normal(size=60), "region": rng.choice(["north", "south", "east"], 60)})
    frame["y"] = frame.x1 + (frame.region == "north") + rng.normal(size=60) * 0.3
    frame.to_csv(tmp_path / "t.csv", index=False)
    result, _ = invoke("fit", tmp_path / "t.csv", "--formula", "y ~ x1 + C(region)", "--no-progress", "--out",
                       tmp_path / "B")
    assert result.exit_code == 0, result.output
    result, _ = invoke("predict", tmp_path / "B", tmp_path / "t.csv", "--out", tmp_path / "full.csv")
    assert result.exit_code == 0, result.output
    frame.loc[[2, 5], "region"] = np.nan
    frame.loc[7, "x1"] = np.nan
    frame.to_csv(tmp_path / "gap.csv", index=False)
    result, text = invoke("predict", tmp_path / "B", tmp_path / "gap.csv")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("3 row(s) of the table have a missing or infinite feature value: rows 2, 5, 7 (lines 4, 7, 9 of a CSV "
            "with a header). Drop or impute them, or pass --skip-missing") in text
    result, _ = invoke("predict", tmp_path / "B", tmp_path / "gap.csv", "--skip-missing", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    pred, full = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "full.csv")
    assert pred["skipped"][[2, 5, 7]].tolist() == ["missing or infinite value in region"] * 2 + [
        "missing or infinite value in x1"]
    assert pred["predicted"][[2, 5, 7]].isna().all() and pred["skipped"].notna().sum() == 3
    kept = ~pred.index.isin([2, 5, 7])
    np.testing.assert_allclose(pred["predicted"][kept], full["predicted"][kept], rtol=1e-12)


def test_save_on_a_full_disk_is_a_clear_error_and_keeps_the_old_model(tmp_path, small_fit, monkeypatch):
    from scanfit.results import persist

    path = tmp_path / "m"
    small_fit.save(path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def full(directory, name, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(directory / name))

    monkeypatch.setattr(persist, "_write", full)
    with pytest.raises(run_dir.OutputError) as caught:
        small_fit.save(path)
    assert str(caught.value) == (f"Cannot save the model to '{path}': No space left on device. The model saved there "
                                 f"before, if any, is unchanged; free some space on that disk, or save to another "
                                 f"directory.")
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary directory left behind
