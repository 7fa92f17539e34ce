"""The ``scanfit`` command line: a thin layer that turns options into library calls and prints.

    scanfit demo [--out DIR] [--force] [--seed N] the notebook's six experiments
    scanfit fit TABLE --target COL [...]         fit a model to a CSV or Parquet table
    scanfit predict MODEL_DIR TABLE [--out F]    predictions for a table
    scanfit summary MODEL_DIR                    what a saved model is
    scanfit cache [--clear]                      where compiled programs are kept, and their size

JAX and the rest of scanfit are imported inside the commands, so ``scanfit --help`` is fast.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from .choices import Activation, CovType, Dtype, LikelihoodKind, Link, ModelKind, Optimizer

app = typer.Typer(name="scanfit", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Fit likelihood models with compiled JAX loops: the notebook's demo, fits on tables, "
                       "predictions and summaries of saved models.")


USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError, TimeoutError)


def _console(stderr: bool = False):
    from ..show.terminal import console

    return console(stderr)  # control characters in printed strings made visible (names from the user's data)


def _fail(err: Exception | str) -> None:
    from rich.markup import escape

    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    _console(stderr=True).print(f"[bold red]Error:[/] {escape(str(message))}", markup=True)
    raise typer.Exit(code=1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory for the histories (CSV), pictures (PNG) and report.html.")]
    = Path("scanfit-demo"),
    seed: Annotated[int, typer.Option(help="Seed for the data and the starting parameters.")] = 0,
    quick: Annotated[bool, typer.Option(help="1,000 training rows and at most 2 starts: a quick check.")] = False,
    only: Annotated[Optional[str], typer.Option(help="Run only these experiments, e.g. 'ad' (of a-f).")] = None,
    force: Annotated[bool, typer.Option(help="Write into a directory that has files of yours: they are never "
                                             "replaced or removed, only scanfit's earlier outputs are.")] = False,
) -> None:
    """Run the notebook's six experiments and write a report (under 2 minutes on 2 cores)."""
    from rich.markup import escape

    from .. import demo as demo_mod
    from .. import tables
    from ..results import run_dir

    if only is not None and (not only or set(only) - set("abcdef")):
        _fail(f"The '--only' option takes letters among a-f, such as 'ad'. Got {only!r}.")
    con = _console()

    def started(exp, options):
        con.print(f"[bold]({exp.key}) {exp.title}[/]: {options['optimizer']}, learning rate "
                  f"{options['learning_rate']:g}, {options['steps']} steps, {options['restarts']} start(s)")

    usual = ("report.html",)
    try:
        run_dir.check(out, force, usual=usual)  # before the experiments, not after them
        outcomes = demo_mod.run(seed=seed, quick=quick, progress=True, only=only, on_start=started)
        summary_table = demo_mod.table(outcomes)
        con.print(tables.rich_table(summary_table.drop(columns="status"),
                                    "The notebook's experiments (objective: valid)"))
        for o in outcomes:
            if o.result is not None and not o.result.status.ok:
                con.print(f"({o.experiment.key}) {o.result.status}", markup=False)
            if o.result is None:
                con.print(f"({o.experiment.key}) skipped: {o.skipped}", markup=False)
        report = run_dir.write(out, lambda d: [demo_mod.write_outputs(outcomes, d)], force=force, by="scanfit demo",
                               usual=usual)[0]
    except (*USER_ERRORS, run_dir.OutputError) as err:
        _fail(err)
    con.print(f"Wrote histories, pictures and [bold]{escape(report.name)}[/] to {escape(str(out))}/")


def _parse_list(value: Optional[str], option: str, kind=str) -> Optional[list]:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    try:
        parsed = [kind(v) for v in items]
    except ValueError:
        _fail(f"The '{option}' option takes comma-separated {kind.__name__}s such as "
              f"{'8,8' if kind is int else 'a,b'}. Got {value!r}.")
    if not parsed:
        _fail(f"The '{option}' option is empty; give comma-separated names or leave it out.")
    return parsed


@app.command()
def fit(
    table: Annotated[Path, typer.Argument(help="CSV or Parquet file with one row per observation.")],
    target: Annotated[Optional[str], typer.Option(help="The column to predict (or give --formula).")] = None,
    formula: Annotated[Optional[str], typer.Option(
        help="A formula instead of --target/--features, e.g. 'y ~ x1 + C(region) + np.log(income)' (text columns "
             "enter through C(...)).")] = None,
    features: Annotated[Optional[str], typer.Option(help="Comma-separated feature columns (default: all others).")]
    = None,
    model: Annotated[ModelKind, typer.Option(help="linear: intercept and slopes; mlp: a neural network.")]
    = ModelKind.linear,
    hidden: Annotated[str, typer.Option(help="Hidden units per layer for --model mlp, e.g. 8,8.")] = "8",
    activation: Annotated[Activation, typer.Option(help="Hidden-layer activation for --model mlp.")]
    = Activation.sigmoid,
    likelihood: Annotated[Optional[LikelihoodKind], typer.Option(
        help="Default from the target: two values bernoulli, 3-20 classes categorical, else gaussian; poisson and "
             "negativebinomial (counts) only when asked.")] = None,
    link: Annotated[Optional[Link], typer.Option(help="Link of a bernoulli target: logit (default) or probit.")]
    = None,
    weights: Annotated[Optional[str], typer.Option(help="Column of frequency weights (a weight of 2 counts the "
                                                        "row twice); not a feature.")] = None,
    exposure: Annotated[Optional[str], typer.Option(help="Column of exposures for count models (log(exposure) is "
                                                         "the offset); not a feature.")] = None,
    offset: Annotated[Optional[str], typer.Option(help="Column added to the index (count models); not a feature.")]
    = None,
    optimizer: Annotated[Optimizer, typer.Option(help="auto: newton for --model linear (the maximum-likelihood "
                                                      "estimate), adam for mlp; gd (plain gradient steps), an optax "
                                                      "name, newton or lbfgs.")]
    = Optimizer.auto,
    learning_rate: Annotated[Optional[float], typer.Option(help="Step size (default 0.1 for gd, 0.01 otherwise).")]
    = None,
    steps: Annotated[int, typer.Option(help="Number of optimizer steps (the most for newton and lbfgs).")] = 2000,
    restarts: Annotated[int, typer.Option(help="Independent starts run together; the best is kept.")] = 1,
    valid_fraction: Annotated[Optional[float], typer.Option(
        help="Share of rows held out for validation. Default: 0 for --model linear (estimates from all rows, as "
             "statsmodels), 0.2 for mlp.")] = None,
    standardize: Annotated[Optional[bool], typer.Option(
        "--standardize/--no-standardize", help="Fit on standardized columns (results stay on the table's scale). "
                                                "Default: on.")] = None,
    dtype: Annotated[Dtype, typer.Option(help="auto: float64 for newton and lbfgs, float32 otherwise.")] = Dtype.auto,
    seed: Annotated[int, typer.Option(help="Seed for the split and the starting parameters.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for the saved model, history.csv, plots and report.html.")]
    = Path("scanfit-fit"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    force: Annotated[bool, typer.Option(help="Write into an --out directory that holds files scanfit did not "
                                             "write: its earlier outputs there are replaced, files of yours never.")] = False,
    cov_type: Annotated[Optional[CovType], typer.Option(
        help="Standard errors in the summary: nonrobust (default), HC0-HC3 (heteroscedasticity-robust) or cluster "
             "(with --cluster).")] = None,
    cluster: Annotated[Optional[str], typer.Option(
        help="Cluster the standard errors by this column (one-way, statsmodels' correction); it is not a feature "
             "unless --features names it.")] = None,
    batch_rows: Annotated[Optional[int], typer.Option(
        help="Stream the Parquet data in chunks of this many rows (a directory or glob always streams; a single "
             "Parquet file streams when this or --distributed is given). Default 262144.", min=1)] = None,
    distributed: Annotated[bool, typer.Option(
        help="Join a group of processes (jax.distributed; SLURM, Open MPI and others are detected) that each read "
             "their share of the Parquet files; only process 0 prints and writes.")] = False,
    coordinator: Annotated[Optional[str], typer.Option(
        help="With --distributed: process 0's address, host:port (default: detected from the cluster).")] = None,
    num_processes: Annotated[Optional[int], typer.Option(help="With --distributed: how many processes.")] = None,
    process_id: Annotated[Optional[int], typer.Option(help="With --distributed: this process's index.")] = None,
) -> None:
    """Fit a model to a table and write the saved model, history, plots and report.

    The outputs replace those of an earlier `scanfit fit` in --out as one piece; Ctrl-C stops the fit
    and saves it as far as it went (status 'interrupted', exit code 130)."""
    from ..show.painter import Painter

    feature_list = _parse_list(features, "--features")
    hidden_units = _parse_list(hidden, "--hidden", int)
    con = _console()
    stage = "before the fit's first steps ran"
    if cluster is not None and cov_type not in (None, CovType.cluster):
        _fail(f"The '--cluster' option clusters the standard errors, so '--cov-type' must be cluster or left out. "
              f"Got --cov-type {cov_type.value}.")
    if cov_type is CovType.cluster and cluster is None:
        _fail("'--cov-type cluster' needs '--cluster COLUMN', the column that holds each row's group.")
    summary_options = {"cov_type": "cluster", "groups": cluster} if cluster is not None else (
        {"cov_type": cov_type.value} if cov_type is not None else {})
    if (coordinator is not None or num_processes is not None or process_id is not None) and not distributed:
        _fail("The '--coordinator', '--num-processes' and '--process-id' options go with '--distributed'.")
    painter = Painter.start()  # before this process imports pandas and JAX: it imports matplotlib meanwhile
    from .. import tables
    from ..results import run_dir
    from ..show import report

    if tables.streams(table, batch_rows, distributed):
        painter.close()  # a streamed fit draws its pictures itself
        if formula is not None or cluster is not None or (valid_fraction or 0) > 0:
            what = "--formula" if formula is not None else "--cluster" if cluster is not None else "--valid-fraction"
            _fail(f"The '{what}' option reads the table in memory; a streamed Parquet fit (a directory, a glob, "
                  f"--batch-rows or --distributed) uses every row for the estimates and named feature columns.")
        mdl = ("linear", None, None) if model is ModelKind.linear else ("mlp", tuple(hidden_units), activation.value)
        _fit_streamed(table, target=target, features=feature_list, model=mdl, likelihood=likelihood, link=link,
                      roles={"weights": weights, "offset": offset, "exposure": exposure}, batch_rows=batch_rows,
                      distributed=(coordinator, num_processes, process_id) if distributed else None,
                      fit_options={"optimizer": optimizer.value, "learning_rate": learning_rate, "steps": steps,
                                   "restarts": restarts, "standardize": standardize, "dtype": dtype.value,
                                   "seed": seed},
                      out=out, progress=progress, force=force, summary_options=summary_options)
        return
    try:
        import scanfit as sf

        run_dir.check(out, force, inputs=[table])  # before the fit, not after it
        frame = tables.read(table)
        mdl = sf.Linear() if model is ModelKind.linear else sf.MLP(hidden=tuple(hidden_units),
                                                                     activation=activation.value)
        lik = None if likelihood is None else likelihood.value
        if target is not None and target in frame.columns:
            con.print(f"Likelihood: {tables.encode_target(frame[target], lik).reason}", markup=False)
        if valid_fraction is None:
            valid_fraction = 0.0 if model is ModelKind.linear else 0.2
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", sf.FitWarning)
            result, tgt, xt, yt = tables.fit_table(
                frame, target=target, features_=feature_list, model=mdl, likelihood=lik,
                valid_fraction=valid_fraction, seed=seed, optimizer=optimizer.value, learning_rate=learning_rate,
                steps=steps, restarts=restarts, progress=progress, standardize=standardize, dtype=dtype.value,
                cluster=cluster, formula=formula, link=None if link is None else link.value, weights=weights,
                exposure=exposure, offset=offset)
        if result.status.code == "interrupted" and result.history.empty:
            raise KeyboardInterrupt  # stopped before its first steps: nothing to save
        painter.submit(result)  # the helper draws while this process prints the summary and writes the rest
        n_valid = 0 if result.valid is None else len(result.valid[1])
        con.print(f"Rows: {len(yt)} gave the estimates" + (f", {n_valid} held out for validation." if n_valid else
                  "; none were held out for validation (--valid-fraction 0.2 would hold out a fifth)."), markup=False)
        con.print(f"Fit: {result.config.optimizer}, {result.config.dtype}"
                  f"{', standardized columns' if result.design.standardized else ''}.", markup=False)
        con.print(f"Status: {result.status}", markup=False)
        for w in caught:
            if issubclass(w.category, sf.FitWarning) and str(w.message) not in str(result.status):
                _console(stderr=True).print(f"Warning: {w.message}", markup=False)
        con.print(tables.rich_table(tables.final_table(result.final), "Final statistics"))
        summary_text = report.summary_or_reason(result, **summary_options)
        if summary_text:
            con.print(summary_text, markup=False)
        stage = "while the outputs were written"
        written = run_dir.write(out, lambda d: tables.write_outputs(result, d, target=tgt, x=xt, y=yt, table=str(table),
                                                                    summary=summary_text, painter=painter), force=force,
                                inputs=[table])
    except (*USER_ERRORS, run_dir.OutputError) as err:
        _fail(err)
    except KeyboardInterrupt:  # outside the fit's loop (which keeps its steps and returns): nothing to save
        _console(stderr=True).print(f"Interrupted (Ctrl-C) {stage}: nothing was saved, {out}/ is unchanged.",
                                    markup=False)
        raise typer.Exit(code=130) from None
    finally:
        painter.close()
    con.print(f"Wrote {', '.join(p.name for p in written)} to {out}/", markup=False)
    if result.status.code == "interrupted":
        _console(stderr=True).print(f"Interrupted (Ctrl-C) after {result.status.steps} of {steps} steps: the fit so "
                                    f"far is saved in {out}/ (model, history.csv, report.html) with status "
                                    f"'interrupted'. Run the command again to fit all steps.", markup=False)
        raise typer.Exit(code=130)


def _fit_streamed(table, *, target, features, model, likelihood, link, roles, batch_rows, distributed, fit_options,
                  out, progress, force, summary_options) -> None:
    """``scanfit fit`` on Parquet read in chunks (``sf.Parquet``); with ``distributed`` (coordinator, count, id)
    every process fits its share and only process 0 prints and writes."""
    import numpy as np
    from rich.console import Console

    import scanfit as sf

    from .. import tables
    from ..results import run_dir
    from ..show import report

    if distributed is not None:
        try:
            sf.distributed.initialize(*distributed)
        except (RuntimeError, ValueError) as err:
            _fail(err)
    writer = sf.distributed.is_writer()
    con = _console() if writer else Console(quiet=True)
    try:
        if writer:
            run_dir.check(out, force, inputs=[table])
        if target is None:
            raise ValueError("Give the column to predict with '--target COLUMN' (a streamed fit takes no formula).")
        options = {k: v for k, v in roles.items() if v is not None}
        source = sf.Parquet(str(table), target=target, features=features, **options,
                            **({"batch_rows": batch_rows} if batch_rows is not None else {}))
        lik, classes, reason = tables.streamed_likelihood(sf, source, None if likelihood is None else likelihood.value,
                                                    None if link is None else link.value)
        con.print(f"Likelihood: {reason}", markup=False)
        kind, hidden, activation = model
        mdl = sf.Linear() if kind == "linear" else sf.MLP(hidden=hidden, activation=activation)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", sf.FitWarning)
            result = sf.fit(mdl, lik, source, progress=progress and writer, **fit_options)
        if result.status.code == "interrupted" and result.history.empty:
            raise KeyboardInterrupt
        count = sf.distributed.process_count()
        con.print(f"Rows: {source.n_rows} gave the estimates (streamed from {len(source.files)} Parquet file(s) in "
                  f"chunks of {source.aligned().batch_rows} rows" + (f", over {count} processes)." if count > 1 else ")."),
                  markup=False)
        con.print(f"Fit: {result.config.optimizer}, {result.config.dtype}"
                  f"{', standardized columns' if result.design.standardized else ''}.", markup=False)
        con.print(f"Status: {result.status}", markup=False)
        for w in caught:
            if issubclass(w.category, sf.FitWarning) and str(w.message) not in str(result.status) and writer:
                _console(stderr=True).print(f"Warning: {w.message}", markup=False)
        con.print(tables.rich_table(tables.final_table(result.final), "Final statistics"))
        summary_text = report.summary_or_reason(result, **summary_options)
        if summary_text:
            con.print(summary_text, markup=False)
        if not writer:
            return
        if classes is None and lik.name == "categorical":
            classes = list(range(result.likelihood.n_classes))
        coded = tables.Target(target, lik.name, np.zeros(0), classes, reason)
        written = run_dir.write(out, lambda d: tables.write_outputs(result, d, target=coded, x=None, y=None,
                                                                    table=str(table), summary=summary_text),
                                force=force, inputs=[table])
    except (*USER_ERRORS, run_dir.OutputError) as err:
        _fail(err)
    except KeyboardInterrupt:
        _console(stderr=True).print(f"Interrupted (Ctrl-C): nothing was saved, {out}/ is unchanged.", markup=False)
        raise typer.Exit(code=130) from None
    con.print(f"Wrote {', '.join(p.name for p in written)} to {out}/", markup=False)
    if result.status.code == "interrupted":
        raise typer.Exit(code=130)


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A directory written by `scanfit fit` (its model/ folder) "
                                                   "or by result.save().")],
    table: Annotated[Path, typer.Argument(help="CSV or Parquet file with the model's feature columns.")],
    out: Annotated[Optional[Path], typer.Option(help="Write here (.csv or .parquet) instead of printing CSV.")] = None,
    skip_missing: Annotated[bool, typer.Option(help="Predict the rows whose features are all there; the others get an "
                                                    "empty prediction and a 'skipped' note (default: refuse them).")]
    = False,
) -> None:
    """Predict for each row of a table: the mean, or class probabilities and the most likely class."""
    from .. import tables
    from ..results import persist
    from ..results.result import FitResult
    from ..show import csv_cells

    try:
        if out is not None:
            tables.check_output_file(out)
        model_dir = _model_path(model_dir)
        outcome, meta = persist.read_with_info(model_dir)  # one read: classes and parameters of one save
        result = FitResult.of(outcome)
        frame = tables.read(table)
        pred = tables.predict_table(result, frame, (meta.get("extra") or {}).get("classes"), skip_missing)
    except USER_ERRORS as err:
        _fail(err)
    skipped = int((pred["skipped"] != "").sum()) if skip_missing else 0
    if skipped:
        _console(stderr=True).print(f"Skipped {skipped} row(s) with a missing or infinite feature value: their "
                                    f"predictions are empty and the 'skipped' column says why.", markup=False)
    if out is None:
        typer.echo(csv_cells.to_csv(pred), nl=False)
        return
    try:
        tables.write_predictions(pred, out)
    except (OSError, ImportError) as err:
        _fail(f"Cannot write the predictions to {str(out)!r}: {getattr(err, 'strerror', None) or err}.")
    _console(stderr=True).print(f"Wrote {len(pred)} predictions to {out}", markup=False)


def _model_path(path: Path) -> Path:
    """Accept the --out directory of `scanfit fit` as well as the model directory inside it."""
    return path / "model" if (path / "model" / "model.json").exists() and not (path / "model.json").exists() else path


@app.command()
def summary(
    model_dir: Annotated[Path, typer.Argument(help="A directory written by `scanfit fit` or result.save().")],
) -> None:
    """Print what was fitted, on what data, its final statistics and the summary table."""
    from .. import tables
    from ..results import persist

    try:
        meta = persist.info(_model_path(model_dir))
    except USER_ERRORS as err:
        _fail(err)
    con = _console()
    extra, cfg = meta.get("extra") or {}, meta["config"]

    def line(*parts: str) -> None:  # labels in bold; the saved text (column names, paths) never as markup
        from rich.text import Text

        from ..show.terminal import printable

        con.print(Text.assemble(*((printable(part), "bold") if k % 2 == 0 else printable(part)
                                  for k, part in enumerate(parts))))

    line("Model", f": {meta['model']}  ", "likelihood", f": {meta['likelihood']}")
    if extra.get("target"):
        line("Target", f": {extra['target']!r}" + (f", classes {extra['classes']}" if extra.get("classes") else ""))
    line("Features", f" ({len(meta['feature_names'])}): {', '.join(meta['feature_names'])}")
    line("Data", f": {extra.get('table') or '(in memory)'}; {meta.get('n_train')} training rows, "
                 f"{meta.get('n_valid') or 0} validation rows")
    rate = "" if cfg["optimizer"] in ("newton", "lbfgs", "proximal") else f"learning rate {cfg['learning_rate']}, "
    line("Fit", f": optimizer {cfg['optimizer']}, {rate}{cfg['steps']} steps, "
                f"{cfg['restarts']} start(s), seed {cfg['seed']}, {cfg['dtype']}; scanfit {meta['scanfit_version']}, "
                f"JAX {meta['jax_version']}")
    line("Status", f": {meta['status']['code']}: {meta['status']['message']}")
    final = {k: (float("nan") if v is None else v) for k, v in (meta.get("final") or {}).items()}
    con.print(tables.rich_table(tables.final_table(final), "Final statistics"))
    if meta.get("summary_text"):
        con.print(meta["summary_text"], markup=False)


@app.command()
def cache(
    clear: Annotated[bool, typer.Option(help="Delete the compiled programs and native kernels scanfit keeps (they "
                                             "are built again when next needed).")] = False,
) -> None:
    """Where scanfit keeps compiled programs between processes ($SCANFIT_CACHE), and their size."""
    from ..engine import cache as compiled

    try:
        lines = compiled.clear() if clear else compiled.describe()
    except (OSError, RuntimeError, TimeoutError) as err:
        _fail(err)
    con = _console()
    for text in lines:
        con.print(text, markup=False)


def main() -> None:
    """The ``scanfit`` command: :data:`app` with the cyclic collector run every 50,000 new objects (importing
    JAX and pandas set off 400 collections, 0.2 s), then a quick exit: the exit handlers run (``atexit``: JAX's,
    ``jax.distributed``'s, logging's), the streams are flushed and ``os._exit`` skips Python's teardown of every
    module (0.4 s after a fit; what the commands write is closed by then). With a non-daemon thread alive, or
    ``SCANFIT_QUICK_EXIT=0``, the exit is Python's usual one."""
    import atexit
    import gc
    import os
    import sys
    import threading

    gc.set_threshold(50_000, 20, 20)
    try:
        app()
        code = 0
    except SystemExit as done:
        code = done.code
    if not isinstance(code, (int, type(None))):  # what sys.exit does with a message
        print(code, file=sys.stderr)
    code = code if isinstance(code, int) else 0 if code is None else 1
    if os.environ.get("SCANFIT_QUICK_EXIT") == "0" or any(
            not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    try:  # and C's buffered streams (what a library printed through stdio)
        __import__("ctypes").CDLL(None).fflush(None)
    finally:
        os._exit(code)


if __name__ == "__main__":  # python -m scanfit.cli
    main()
