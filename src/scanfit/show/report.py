"""A self-describing HTML report: headings, text, tables and pictures (PNG files beside it).

The report links the PNGs by relative path, so the directory can be moved or zipped as a
whole; all text is HTML-escaped.

>>> import pandas as pd, tempfile, pathlib
>>> from scanfit import report
>>> path = pathlib.Path(tempfile.mkdtemp()) / "report.html"
>>> _ = report.write(path, "Title", [report.Section("A", tables=[("t", pd.DataFrame({"a": [1]}))])])
>>> "<h2>A</h2>" in path.read_text()
True
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["Section", "write", "result_section", "summary_or_reason", "header_statistics"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
.meta { color: #666; font-size: .9em; }
"""


@dataclass
class Section:
    """One part of a report: a heading, paragraphs, (caption, DataFrame) tables, (caption, PNG path) images,
    and preformatted text blocks."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    images: list[tuple[str, Path]] = field(default_factory=list)
    pre: list[str] = field(default_factory=list)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0, float_format=lambda v: f"{v:.4g}", na_rep="")


def write(path: str | Path, title: str, sections: list[Section], *, intro: str = "") -> Path:
    """Write the report to ``path`` (atomically: a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='meta'>Written by scanfit on {when}.</p>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{html.escape(t)}</p>" for t in s.text]
        for caption, frame in s.tables:
            if caption:
                parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(_table(frame))
        parts += [f"<pre>{html.escape(t)}</pre>" for t in s.pre]
        for caption, image in s.images:
            rel = os.path.relpath(Path(image), path.parent).replace(os.sep, "/")
            parts.append(f"<figure><img src='{html.escape(rel, quote=True)}' alt='{html.escape(caption, quote=True)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _has_inference(result) -> bool:
    """Whether ``result`` can give a summary: its training rows, or the pieces a streamed fit's last pass summed
    (kept by a saved fit too)."""
    return getattr(result, "train", None) is not None or getattr(result, "inference", None) is not None


def summary_or_reason(result, **options) -> str | None:
    """``result.summary_text(**options)``, or one line saying why there is none (None without the method)."""
    import warnings

    if not hasattr(result, "summary_text") or not _has_inference(result):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return result.summary_text(**options)
    except Exception as err:  # the summary is optional; say why it is missing
        return f"(no summary table: {err})"


def header_statistics(result) -> pd.DataFrame | None:
    """The summary header's model statistics (observations, log-likelihood, the null model and the LR
    test against it, McFadden's pseudo R-squared, AIC, BIC) as a two-column table; None when the
    result has no summary (no training data, a network)."""
    import warnings

    if not hasattr(result, "summary") or not _has_inference(result):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = result.summary().attrs
    except Exception:  # the table is optional; summary_or_reason says why there is none
        return None
    rows = [("observations", a["n_obs"]), ("parameters", a["k"]), ("log-likelihood", a["loglik"]),
            ("null log-likelihood (intercept only)", a["llnull"]),
            (f"LR chi-squared against the null ({a['llr_df']} df)", a["llr"]), ("LR p-value", a["llr_pvalue"]),
            ("pseudo R-squared (McFadden)", a["pseudo_r2"]), ("AIC", a["aic"]), ("BIC", a["bic"])]
    if "sigma" in a:
        rows.append(("sigma", a["sigma"]))
    return pd.DataFrame(rows, columns=["statistic", "value"])


def result_section(title: str, result, images: list[tuple[str, Path]] = (), *, text: list[str] = (),
                   summary: str | None = None) -> Section:
    """A section for one FitResult: its settings, status, final statistics, restarts and summary
    (``summary`` is the summary's text when already computed)."""
    cfg = result.config
    settings = pd.DataFrame([{"model": str(result.model.spec()), "likelihood": result.likelihood.name,
                              "optimizer": str(getattr(cfg.optimizer, "__name__", cfg.optimizer)),
                              "learning rate": cfg.learning_rate, "steps": cfg.steps, "restarts": cfg.restarts,
                              "seed": cfg.seed, "seconds": round(result.seconds, 2)}])
    final = pd.DataFrame([{"statistic": k, "value": v} for k, v in result.final.items()])
    section = Section(title, text=[*text, f"Status: {result.status}"],
                      tables=[("Settings", settings), ("Final statistics", final)], images=list(images))
    header = header_statistics(result)
    if header is not None:
        section.tables.append(("Model statistics", header))
    if len(result.start_finals) > 1:
        section.tables.append(("Restarts", result.restarts))
    summary = summary if summary is not None else summary_or_reason(result)
    if summary is not None:
        section.pre.append(summary)
    return section
