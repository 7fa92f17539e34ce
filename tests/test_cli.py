"""The scanfit command line, driven through typer's CliRunner (and a subprocess for --help)."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scanfit import tables
from scanfit.engine import loop as engine
from scanfit.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def buy_csv(tmp_path_factory):
    rng = np.random.default_rng(1)
    n = 500
    df = pd.DataFrame({"age": rng.normal(0, 1, n), "income": rng.normal(0, 1, n)})
    df["buy"] = np.where(1.5 * df.age - 2.0 * df.income + rng.logistic(size=n) > 0, "yes", "no")
    path = tmp_path_factory.mktemp("data") / "buy.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted(buy_csv, tmp_path_factory):
    """`scanfit fit` on a CSV, recording the progress bars the engine was asked for."""
    out = tmp_path_factory.mktemp("fit")
    bars, real = [], engine._progress_bar
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "_progress_bar", lambda progress, total: bars.append((progress, total)) or real(progress, total))
        result = invoke("fit", buy_csv, "--target", "buy", "--optimizer", "gd", "--learning-rate", "1.0",
                        "--steps", "200", "--valid-fraction", "0.2", "--out", out)
    return result, out, bars


def test_help_is_fast_and_does_not_import_jax():
    code = ("import sys; from typer.testing import CliRunner; from scanfit.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); print(r.exit_code, 'jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]
    exe = Path(sys.executable).with_name("scanfit")
    start = time.perf_counter()
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0 and "demo" in done.stdout and "predict" in done.stdout
    assert elapsed < 3.0, f"scanfit --help took {elapsed:.2f}s (about 0.5 s on an idle machine)"


def test_main_exits_quickly_with_the_commands_code_output_and_exit_handlers(tmp_path):
    """``scanfit`` (cli.main) ends with os._exit after the exit handlers: the exit code is the command's,
    piped output is all there, atexit handlers run; with a non-daemon thread alive Python exits as usual."""
    def run(argv, before="pass"):
        code = (f"import atexit, sys, threading; {before}; atexit.register(lambda: print('handler ran', flush=True)); "
                f"sys.argv = {argv!r}; from scanfit.cli import main; main()")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    missing = run(["scanfit", "summary", str(tmp_path / "nothing")])
    assert missing.returncode == 1 and "nothing" in missing.stderr and missing.stdout.endswith("handler ran\n")
    usage = run(["scanfit", "no-such-command"])
    assert usage.returncode == 2 and "No such command" in usage.stderr
    big = run(["scanfit", "--help"], before="sys.stdout.write('x' * 200000); import ctypes; "
              "ctypes.CDLL(None).printf(b'from C stdio')")  # Python's and C's buffered output are flushed
    assert big.returncode == 0 and big.stdout.startswith("x" * 200000) and "predict" in big.stdout
    assert "from C stdio" in big.stdout
    threaded = run(["scanfit", "--help"], before="import time; threading.Thread(target=lambda: (time.sleep(2.5), "
                   "print('thread done', flush=True))).start()")  # exits only once the thread is done
    # (the help must be printed before the thread wakes: 2.5 s, as a busy machine imports slowly)
    assert threaded.returncode == 0 and threaded.stdout.endswith("thread done\nhandler ran\n")


def test_fit_on_csv_prints_choice_statistics_and_writes_files(fitted):
    result, out, bars = fitted
    assert result.exit_code == 0, result.output
    assert bars == [(True, 200)]  # the CLI shows progress
    assert "Likelihood: target 'buy' has two values ['no', 'yes']: bernoulli, coding 'no' as 0 and 'yes' as 1" \
        in result.output
    assert "Status: completed" in result.output and "Final statistics" in result.output
    line = next(li for li in result.output.splitlines() if li.strip().startswith("accuracy"))
    train_acc, valid_acc = map(float, line.split()[1:3])
    assert train_acc > 0.7 and valid_acc > 0.7  # chance is about 0.5; the Bayes rate about 0.8
    for name in ("model/model.json", "model/params.safetensors", "history.csv", "learning_path.png",
                 "coefficient_paths.png", "decision_regions.png", "report.html"):
        assert (out / name).exists(), name
    assert len(pd.read_csv(out / "history.csv")) == 200
    html = (out / "report.html").read_text()
    assert "<img src='decision_regions.png'" in html and "Final statistics" in html


def test_predict_and_summary_of_the_saved_model(fitted, buy_csv, tmp_path):
    _, out, _ = fitted
    pred_file = tmp_path / "pred.csv"
    result = invoke("predict", out, buy_csv, "--out", pred_file)
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(pred_file)
    assert list(pred.columns) == ["age", "income", "buy", "prob_yes", "predicted"]
    assert set(pred["predicted"]) == {"no", "yes"} and pred["prob_yes"].between(0, 1).all()
    assert (pred["predicted"] == pred["buy"]).mean() > 0.7
    assert ((pred["prob_yes"] >= 0.5) == (pred["predicted"] == "yes")).all()
    printed = invoke("predict", out / "model", buy_csv)  # to stdout; the model folder itself works too
    assert printed.exit_code == 0 and printed.output.splitlines()[0] == "age,income,buy,prob_yes,predicted"
    summary = invoke("summary", out)
    assert summary.exit_code == 0, summary.output
    for text in ("Target: 'buy', classes ['no', 'yes']", "Features (2): age, income", "400 training rows",
                 "100 validation rows", "optimizer gd", "Status: completed", "Final statistics"):
        assert text in summary.output, text


def test_predict_names_missing_columns(fitted, tmp_path):
    _, out, _ = fitted
    pd.DataFrame({"age": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    result = invoke("predict", out, tmp_path / "bad.csv")
    assert result.exit_code == 1
    assert "lacks the feature columns ['income']" in result.output


def test_a_missing_feature_value_names_the_table_row(buy_csv, tmp_path):
    frame = pd.read_csv(buy_csv)
    frame.loc[5, "income"] = np.nan
    frame.to_csv(tmp_path / "gap.csv", index=False)
    result = invoke("fit", tmp_path / "gap.csv", "--target", "buy", "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "column 'income' has 1 missing or infinite values; the first is at row 5 of the table" in result.output


def test_fit_parquet_gaussian_with_chosen_features(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "noise": rng.normal(size=300)})
    df["y"] = 1.0 + 2.0 * df.a - df.b + 0.1 * rng.normal(size=300)
    df.to_parquet(tmp_path / "t.parquet")
    result = invoke("fit", tmp_path / "t.parquet", "--target", "y", "--features", "a,b", "--optimizer", "gd",
                    "--steps", "300", "--valid-fraction", "0.1", "--out", tmp_path / "o", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "target 'y' has 300 distinct numeric values: gaussian" in result.output
    line = next(li for li in result.output.splitlines() if li.strip().startswith("mse"))
    assert float(line.split()[1]) < 0.05
    from scanfit.results import persist

    meta = persist.info(tmp_path / "o" / "model")
    assert meta["feature_names"] == ["a", "b"] and meta["n_train"] == 270 and meta["n_valid"] == 30


def test_encode_target_chooses_and_codes():
    two = tables.encode_target(pd.Series([5, 7, 5], name="t"), None)
    assert two.likelihood == "bernoulli" and two.codes.tolist() == [0, 1, 0] and two.classes == [5, 7]
    three = tables.encode_target(pd.Series(["b", "c", "a", "c"], name="t"), None)
    assert three.likelihood == "categorical" and three.codes.tolist() == [1, 2, 0, 2]
    ints = tables.encode_target(pd.Series([0, 1, 2, 3, 2], name="t"), None)
    assert ints.likelihood == "categorical" and ints.classes == [0, 1, 2, 3]
    assert tables.encode_target(pd.Series([0.5, 1.5, 2.25], name="t"), None).likelihood == "gaussian"
    with pytest.raises(ValueError, match="needs a target with two values; column 't' has 3"):
        tables.encode_target(pd.Series([1, 2, 3], name="t"), "bernoulli")
    with pytest.raises(ValueError, match="Gaussian likelihood needs a numeric target; column 't'"):
        tables.encode_target(pd.Series(["x", "y"], name="t"), "gaussian")


@pytest.mark.parametrize("args, code, message", [
    (["fit", "MISSING.csv", "--target", "buy"], 1, "The table 'MISSING.csv' does not exist"),
    (["fit", "{csv}", "--target", "nope"], 1,
     "The target column 'nope' is not in the table; its columns are ['age', 'income', 'buy']"),
    (["fit", "{csv}", "--target", "buy", "--model", "forest"], 2, "'forest' is not one of 'linear', 'mlp'"),
    (["fit", "{csv}", "--target", "buy", "--features", "age,height"], 1,
     "The feature columns ['height'] are not in the table"),
    (["fit", "{csv}", "--target", "buy", "--hidden", "8,x"], 1, "The '--hidden' option takes comma-separated ints"),
    (["fit", "{csv}", "--target", "buy", "--likelihood", "gaussian"], 1, "Gaussian likelihood needs a numeric target"),
    (["fit", "{csv}", "--target", "buy", "--steps", "0"], 1, "The 'steps' parameter of fit must be an int >= 1. Got 0"),
    (["predict", "NO_MODEL", "{csv}"], 1, "No saved model at 'NO_MODEL'"),
    (["summary", "{csv}"], 1, "is not a saved scanfit model: model.json is missing"),
    (["demo", "--only", "xyz"], 1, "The '--only' option takes letters among a-f"),
])
def test_errors_name_the_problem(buy_csv, args, code, message):
    result = invoke(*[a.replace("{csv}", str(buy_csv)) for a in args])
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.replace("│", " ").split()), result.output


def test_nan_and_text_features_are_refused(tmp_path):
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0], "city": ["x", "y", "x", "y"], "y": [0, 1, 0, 1]})
    df.to_csv(tmp_path / "t.csv", index=False)
    result = invoke("fit", tmp_path / "t.csv", "--target", "y")
    assert result.exit_code == 1
    assert "The feature columns ['city'] hold text (categories)" in " ".join(result.output.split())
    result = invoke("fit", tmp_path / "t.csv", "--target", "y", "--features", "a")
    assert result.exit_code == 1
    assert "column 'a' has 1 missing or infinite values; the first is at row 1 of the table" in " ".join(
        result.output.split())
    df.loc[2, "y"] = np.nan
    df.drop(columns="city").to_csv(tmp_path / "t.csv", index=False)
    result = invoke("fit", tmp_path / "t.csv", "--target", "y", "--features", "a")
    assert "The target column 'y' has 1 missing (NaN) values, the first at row 2" in " ".join(result.output.split())


def test_demo_quick_writes_tables_pictures_and_report(tmp_path):
    result = invoke("demo", "--quick", "--only", "ad", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "(a) linear regression: gd, learning rate 0.01, 500 steps" in out
    assert "(d) hill network, gd: gd, learning rate 2, 2000 steps, 2 start(s)" in out
    rows = [li.split() for li in result.output.splitlines() if li.strip().startswith(("(a)", "(d)")) and "steps" not in li]
    assert rows[0][:5] == ["(a)", "linear", "gd", "500", "mse"]
    assert float(rows[0][6]) == pytest.approx(0.25, abs=0.05)  # valid MSE near sigma^2 = 0.25
    assert rows[1][:6] == ["(d)", "hill", "MLP", "gd", "2000", "accuracy"] and float(rows[1][7]) > 0.9
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["a_linear_history.csv", "a_linear_learning_path.png", "a_linear_coefficient_paths.png",
                            "d_hill_gd_history.csv", "d_hill_gd_learning_path.png", "d_hill_gd_decision_regions.png",
                            "d_hill_gd_hidden_units.png", "d_hill_gd_restarts.png", "report.html", ".scanfit-fit.json"])
    html = (tmp_path / "report.html").read_text()
    assert html.count("<img src=") == 6 and "(d) hill network, gd" in html


def test_demo_without_flax_skips_the_nnx_experiment(monkeypatch):
    from scanfit import demo

    monkeypatch.setattr(demo, "_available", lambda package: package is None)
    outcomes = demo.run(only="f")
    assert outcomes[0].result is None and "pip install 'scanfit[flax]'" in outcomes[0].skipped
    assert demo.table(outcomes)["status"].tolist() == ["skipped (needs flax: pip install 'scanfit[flax]')"]
