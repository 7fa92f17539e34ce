"""scanfit.plots: each picture has the panels, titles, labels and legends it promises, draws the
right regions, and refuses what it cannot draw with a message naming the fix."""

import numpy as np
import pytest
from matplotlib.figure import Figure

import _io_fits
import scanfit as sf
from scanfit.show import plots


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_history_one_panel_per_statistic_train_and_valid_together():
    r = _io_fits.mlp()
    fig = plots.history(r)
    assert isinstance(fig, Figure)
    axes = _visible(fig)
    assert [a.get_title() for a in axes] == ["objective (mean log-likelihood)", "accuracy", "false positives (share)",
                                             "false negatives (share)", "share predicted 1"]
    for ax in axes:
        assert [line.get_label() for line in ax.get_lines()] == ["train", "valid"]
        assert ax.get_xlabel() == "step"
        np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), r.history["step"])
    np.testing.assert_array_equal(axes[1].get_lines()[1].get_ydata(), r.history["valid_accuracy"])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["train", "valid"]
    assert len(_visible(plots.history(r.history, stats=["accuracy"]))) == 1
    with pytest.raises(ValueError, match=r"'stats' parameter names \['auc'\], which are not in the history"):
        plots.history(r, stats=["auc"])


def test_coefficient_paths_with_truth():
    d, r = _io_fits.linear()
    fig = plots.coefficients(r, truth=d.truth)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == ["intercept", "slope: x"] and "true value" in labels
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), r.history["beta0"])
    assert ax.get_lines()[2].get_ydata()[0] == pytest.approx(3.0)  # the true intercept line
    with pytest.raises(ValueError, match="Coefficient paths need a Linear model; this result's model is 'mlp'"):
        plots.coefficients(_io_fits.mlp())


def test_decision_regions_match_predictions_and_refuse_non_classifiers():
    r = _io_fits.mlp()
    d = _io_fits.hill()
    fig = plots.decision_regions(r, d.train.x, d.train.y, resolution=40, classes=["low", "high"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x0" and ax.get_ylabel() == "x1"
    assert ax.get_title() == f"Decision regions (accuracy {r.final['valid_accuracy']:.3f})"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["predicted low", "predicted high",
                                                                   "observed low", "observed high"]
    with pytest.raises(ValueError, match=r"need exactly 2 features; 'x' has shape \(5, 3\)"):
        plots.decision_regions(r, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="need a classifier .*this is Gaussian"):
        plots.decision_regions(_io_fits.linear()[1], np.zeros((5, 2)))


def test_hidden_units_regions_follow_the_weights():
    r = _io_fits.mlp()
    fig = plots.hidden_units(r)
    assert len(_visible(fig)) == 3
    assert _visible(fig)[0].get_title().startswith(f"unit 0: output weight {r.params['W1'][0]:+.2f}")
    # a hand-made unit: active where x0 >= 0.5, output weight -2, so it favours class 1 where x0 < 0.5
    x = np.array([[0.0, 0.0], [1.0, 1.0]])
    fig = plots.hidden_units(r, x, weights=(np.array([[1.0], [0.0]]), np.array([-0.5]), np.array([-2.0])),
                             resolution=11)
    colours = np.asarray(fig.axes[0].collections[0].get_array()).reshape(11, 11)
    grid_x0 = np.linspace(-0.03, 1.03, 11)
    np.testing.assert_array_equal(colours[0], (grid_x0 < 0.5).astype(int))
    assert fig.axes[0].get_title() == "unit 0: output weight -2.00"
    far = plots.hidden_units(r, x, weights=(np.array([[1.0], [0.0]]), np.array([-5.0]), np.array([1.0])), resolution=5)
    assert far.axes[0].get_title() == "unit 0: output weight +1.00\n(boundary outside the data)"
    with pytest.raises(ValueError, match="one hidden layer, or pass weights"):
        plots.hidden_units(_io_fits.linear()[1])


def test_restarts_bars_and_errors():
    r = _io_fits.mlp()
    fig = plots.restarts(r)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, r.restarts["valid_accuracy"])
    kept = [i for i, p in enumerate(ax.patches) if p.get_facecolor()[:3] == pytest.approx((214 / 255, 39 / 255, 40 / 255))]
    assert kept == [r.best_start]
    assert ax.get_title() == "Restarts: final valid accuracy by start"
    with pytest.raises(ValueError, match="needs several starts; fit with restarts=8"):
        plots.restarts(_io_fits.linear()[1])


def test_save_all_writes_every_picture_that_applies(tmp_path):
    written = plots.save_all(_io_fits.mlp(), tmp_path, prefix="m_")
    assert [c for c, _ in written] == ["Learning path", "Decision regions", "Hidden units", "Restarts"]
    assert all(p.exists() and p.stat().st_size > 5000 and p.name.startswith("m_") for _, p in written)
    written = plots.save_all(_io_fits.linear()[1], tmp_path)
    assert [c for c, _ in written] == ["Learning path", "Coefficient paths"]
    assert sf.plots is plots
