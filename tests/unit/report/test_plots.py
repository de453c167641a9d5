"""Unit tests for harmdrift.plots: every figure writes a non-empty PNG and PDF, empty inputs included."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from matplotlib.container import ErrorbarContainer

from harmdrift.core.vocab import FIGURES as FIGURE_NAMES
from harmdrift.core.vocab import FORCED_ACCURACY_COLUMNS
from harmdrift.report.audit_figures import audit_figures, drift_by_severity, score_deltas
from harmdrift.report.figures import (
    accuracy_by_model,
    benchmark_heatmap,
    loss_curves,
    open_domain_categories,
    plot_all,
    yes_rate_vs_gold,
)
from harmdrift.report.main_table import main_results
from harmdrift.report.plotting import model_colour

MODELS = ("m0", "m_int", "m_dart")
PNG_MAGIC = b"\x89PNG"
PDF_MAGIC = b"%PDF"


def assert_figures(png, pdf):
    assert png.read_bytes()[:4] == PNG_MAGIC and png.stat().st_size > 1000
    assert pdf.read_bytes()[:4] == PDF_MAGIC and pdf.stat().st_size > 1000


def write_metrics(path, model: str, acc: float):
    rows = []
    for bench in ("D1", "N1", "ALL"):
        rows.append(
            {
                "model": model,
                "benchmark": bench,
                "n": 16,
                "strict_overall_acc": acc - 0.2,
                "strict_overall_acc_ci_low": acc - 0.25,
                "strict_overall_acc_ci_high": acc - 0.15,
                "strict_equal_acc": 0.6,
                "strict_equal_acc_ci_low": 0.5,
                "strict_equal_acc_ci_high": 0.7,
                "strict_diff_acc": 0.1,
                "strict_diff_acc_ci_low": 0.0,
                "strict_diff_acc_ci_high": 0.2,
                "strict_abstain_rate": 0.4,
                "strict_abstain_rate_ci_low": 0.3,
                "strict_abstain_rate_ci_high": 0.5,
                **{c: 0.5 for c in FORCED_ACCURACY_COLUMNS},
                "overall_acc": acc,
                "ci_low": acc - 0.1,
                "ci_high": acc + 0.1,
                "equal_acc": 0.8,
                "equal_ci_low": 0.7,
                "equal_ci_high": 0.9,
                "diff_acc": 0.2,
                "diff_ci_low": 0.1,
                "diff_ci_high": 0.3,
                "yes_rate": 0.3,
                "gold_yes_rate": 0.5,
                "abstain_rate": 0.1,
                "mcnemar_p": 0.01,
            }
        )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_summary(path, model: str, by_severity: dict):
    n_drift = sum(by_severity.values())
    path.write_text(
        json.dumps(
            {
                "model": model,
                "n_drift": n_drift,
                "by_severity": by_severity,
                "by_category": {"omits_harm": n_drift},
                "delta": 0.01,
            }
        )
    )
    return path


def write_audit(path, deltas: list[float]):
    pd.DataFrame({"id": [f"x{i}" for i in range(len(deltas))], "delta": deltas}).to_csv(path, index=False)
    return path


def write_rates(path, model: str):
    shares = {
        "appropriate_differentiation": 0.5,
        "refusal": 0.2,
        "generic_equal": 0.2,
        "inappropriate_differentiation": 0.1,
        "appropriate": 0.6,
        "keyword_refusal": 0.1,
    }
    rows = [
        {
            "model": model,
            "subset": "all",
            "category": c,
            "count": 1,
            "n": 10,
            "rate": r,
            "ci_low": 0.0,
            "ci_high": 1.0,
        }
        for c, r in shares.items()
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def files(tmp_path):
    metrics = {
        m: write_metrics(tmp_path / f"metrics_{m}.csv", m, 0.3 + 0.2 * i) for i, m in enumerate(MODELS)
    }
    summaries = {
        "m_int": write_summary(tmp_path / "s_int.json", "m_int", {"minor": 3, "moderate": 2, "severe": 1}),
        "m_dart": write_summary(tmp_path / "s_dart.json", "m_dart", {"minor": 1}),
    }
    audits = {
        "m_int": write_audit(tmp_path / "a_int.csv", [-0.2, 0.0, 0.005, 0.05, 0.3]),
        "m_dart": write_audit(tmp_path / "a_dart.csv", [-0.1, 0.0, 0.02]),
    }
    rates = {m: write_rates(tmp_path / f"{m}.rates.csv", m) for m in ("m0", "m_dart")}
    losses = {}
    for m in ("m_int", "m_dart"):
        losses[m] = tmp_path / f"loss_{m}.csv"
        pd.DataFrame(
            {
                "step": [1, 2, 3],
                "epoch": [0.3, 0.6, 1.0],
                "loss": [1.8, 1.5, 1.2],
                "learning_rate": [0.0, 2e-4, 1e-4],
            }
        ).to_csv(losses[m], index=False)
    return {"metrics": metrics, "summaries": summaries, "audits": audits, "rates": rates, "losses": losses}


def test_main_df_figures(tmp_path, files):
    main_df = main_results(files["metrics"], files["summaries"], files["rates"])
    for name, draw in (("acc", accuracy_by_model), ("yes", yes_rate_vs_gold)):
        png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
        draw(main_df, png, pdf)
        assert_figures(png, pdf)


def test_accuracy_figure_shows_strict_first(tmp_path, files, monkeypatch):
    figures = []
    monkeypatch.setattr("harmdrift.report.figures.save_figure", lambda fig, png, pdf: figures.append(fig))
    main_df = main_results(files["metrics"], files["summaries"], files["rates"])
    accuracy_by_model(main_df, tmp_path / "acc.png")
    strict_ax, tolerant_ax = figures[0].axes
    assert "strict" in strict_ax.get_title() and "tolerant" in tolerant_ax.get_title()
    # Bars go group by group (overall, EQUAL, DIFF), one per model in table order.
    strict_overall = [bar.get_height() for bar in strict_ax.patches[: len(MODELS)]]
    tolerant_overall = [bar.get_height() for bar in tolerant_ax.patches[: len(MODELS)]]
    assert strict_overall == pytest.approx([10.0, 30.0, 50.0])
    assert tolerant_overall == pytest.approx([30.0, 50.0, 70.0])
    # Every bar carries its CI: one error-bar container per item group in each panel.
    for ax in (strict_ax, tolerant_ax):
        errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(errorbars) == 3 and all(c.has_yerr for c in errorbars)


def test_path_based_figures(tmp_path, files):
    cases = {
        "heatmap": lambda png, pdf: benchmark_heatmap(files["metrics"], png, pdf),
        "drift": lambda png, pdf: drift_by_severity(files["summaries"], png, pdf),
        "deltas": lambda png, pdf: score_deltas(files["audits"], png, pdf, delta=0.01),
        "open": lambda png, pdf: open_domain_categories(files["rates"], png, pdf),
        "loss": lambda png, pdf: loss_curves(files["losses"], png, pdf),
    }
    for name, draw in cases.items():
        png, pdf = tmp_path / "figs" / f"{name}.png", tmp_path / "figs" / f"{name}.pdf"
        draw(png, pdf)
        assert_figures(png, pdf)


def test_pdf_path_defaults_to_png_stem(tmp_path, files):
    drift_by_severity(files["summaries"], tmp_path / "d.png")
    assert_figures(tmp_path / "d.png", tmp_path / "d.pdf")


def test_empty_inputs_do_not_crash(tmp_path):
    empty_audit = tmp_path / "audit.csv"
    empty_audit.write_text("id,delta\n")
    no_drift = write_summary(tmp_path / "s.json", "m_int", {"minor": 0})
    cases = {
        "acc": lambda png, pdf: accuracy_by_model(pd.DataFrame({"model": []}), png, pdf),
        "heat": lambda png, pdf: benchmark_heatmap({}, png, pdf),
        "drift_none": lambda png, pdf: drift_by_severity({}, png, pdf),
        "drift_zero": lambda png, pdf: drift_by_severity({"m_int": no_drift}, png, pdf),
        "deltas": lambda png, pdf: score_deltas({"m_int": empty_audit}, png, pdf, delta=0.01),
        "open": lambda png, pdf: open_domain_categories({}, png, pdf),
        "loss": lambda png, pdf: loss_curves({}, png, pdf),
    }
    for name, draw in cases.items():
        png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
        draw(png, pdf)
        assert_figures(png, pdf)


def test_audit_figures_with_and_without_drift(tmp_path, files):
    out = [tmp_path / n for n in ("d.png", "d.pdf", "c.png", "c.pdf")]
    audit_figures(files["audits"]["m_int"], files["summaries"]["m_int"], *out)
    for png, pdf in (out[:2], out[2:]):
        assert_figures(png, pdf)

    empty_audit = tmp_path / "empty.csv"
    empty_audit.write_text("")
    no_drift = write_summary(tmp_path / "none.json", "m_dart", {})
    out = [tmp_path / n for n in ("e.png", "e.pdf", "f.png", "f.pdf")]
    audit_figures(empty_audit, no_drift, *out)
    for png, pdf in (out[:2], out[2:]):
        assert_figures(png, pdf)


def test_plot_all_writes_every_figure(tmp_path, files):
    main_df = main_results(files["metrics"], files["summaries"], files["rates"])
    main_csv = tmp_path / "main.csv"
    main_df.to_csv(main_csv, index=False)
    written = plot_all(
        main_csv,
        files["metrics"],
        files["summaries"],
        files["audits"],
        files["rates"],
        files["losses"],
        tmp_path / "figures",
        delta=0.01,
    )
    assert [p.stem for p in written] == list(FIGURE_NAMES)
    for png in written:
        assert_figures(png, png.with_suffix(".pdf"))


def test_colours_are_stable_and_distinct():
    colours = [model_colour(m) for m in ("m0", "m_int", "m_dart", "m_dart_r2", "m_int_predlabel", "m_joint")]
    assert len(set(colours)) == len(colours)
    assert model_colour("m_dart_r2") == model_colour("m_dart_r2")


# --- report captions ----------------------------------------------------------------------

REPORT_DIR = Path(__file__).resolve().parents[3] / "report"
TABLE_CAPTIONS = (
    "main_results",
    "paper_comparison",
    "metrics",
    "metrics_mc",
    "audit_table",
    "audit_summary",
    "open_domain_rates",
    "audit_deltas",
    "audit_counts",
    "workflow",
)


def test_every_figure_and_table_has_a_caption():
    names = {p.stem for p in REPORT_DIR.glob("*.rst")}
    missing = (set(FIGURE_NAMES) | set(TABLE_CAPTIONS)) - names
    assert not missing, f"report/ lacks captions: {sorted(missing)}"


@pytest.mark.parametrize("caption", sorted(p.name for p in REPORT_DIR.glob("*.rst")))
def test_caption_renders_as_snakemake_would(caption):
    # Snakemake renders captions with Jinja2 (trim/lstrip blocks) and then docutils; a strict
    # undefined catches config keys that do not exist, halt_level=2 catches RST warnings.
    jinja2 = pytest.importorskip("jinja2")
    core = pytest.importorskip("docutils.core")
    config = yaml.safe_load((REPORT_DIR.parent / "config" / "config.yaml").read_text())
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    snakemake = SimpleNamespace(config=config, wildcards=SimpleNamespace(model="m_int", pset="benchmark"))
    text = env.from_string((REPORT_DIR / caption).read_text()).render(snakemake=snakemake)
    body = core.publish_parts(text, writer="html", settings_overrides={"halt_level": 2})["body"]
    assert len(body) > 100


def test_a_saved_pdf_holds_no_creation_date(tmp_path):
    """Nothing time-dependent in the PDF: a re-run of the report writes identical files."""
    import matplotlib.pyplot as plt

    from harmdrift.report.plotting import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "f.png", None)
    assert b"/CreationDate" not in (tmp_path / "f.pdf").read_bytes()


def _shows_something(ax) -> bool:
    """An axes shows data (a bar of non-zero height, a line, an image) or a written note."""
    heights = [patch.get_height() for patch in ax.patches if hasattr(patch, "get_height")]
    bars = any(h == h and h > 0 for h in heights)  # NaN bars draw nothing
    lines = any(len(line.get_xdata()) > 1 for line in ax.lines)
    return bars or lines or bool(ax.images) or bool(ax.texts) or bool(ax.collections)


def test_under_classifier_verdicts_every_figure_shows_data_or_says_why_not(tmp_path, files, monkeypatch):
    """The smoke run's case: no judge, so no open-domain categories and no drift categories; M_int
    with no drift and M_DART with some; every panel must show data or a labelled note, every
    zero bar its value, and no title or axis may speak of a judge's verdict."""
    figures = []
    for module in ("figures", "audit_figures", "plotting"):
        monkeypatch.setattr(
            f"harmdrift.report.{module}.save_figure", lambda fig, png, pdf: figures.append(fig)
        )
    classifier = {
        **json.loads(files["summaries"]["m_int"].read_text()),
        "verdicts": "classifier",
        "by_category": {},
    }
    files["summaries"]["m_int"].write_text(json.dumps({**classifier, "n_drift": 0, "by_severity": {}}))
    files["summaries"]["m_dart"].write_text(
        json.dumps({**classifier, "n_drift": 2, "by_severity": {"extreme": 2}})
    )
    for model in ("m0", "m_dart"):  # rates without a judge: only the keyword check has a value
        frame = pd.read_csv(files["rates"][model])
        frame.loc[frame["category"] != "keyword_refusal", "rate"] = float("nan")
        frame.to_csv(files["rates"][model], index=False)
    main_df = main_results(files["metrics"], files["summaries"], files["rates"])
    main_csv = tmp_path / "main.csv"
    main_df.to_csv(main_csv, index=False)
    plot_all(main_csv, files["metrics"], files["summaries"], files["audits"], files["rates"], files["losses"],
             tmp_path / "figures", delta=0.01)  # fmt: skip
    audit_figures(files["audits"]["m_dart"], files["summaries"]["m_dart"], *(tmp_path / n for n in "abcd"))
    assert len(figures) == len(FIGURE_NAMES) + 2
    for fig in figures:
        words = " ".join(
            [fig._suptitle.get_text() if fig._suptitle else ""]
            + [t for ax in fig.axes for t in (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())]
        )
        assert "judge severity" not in words and "Confirmed" not in words, words
        for ax in fig.axes:
            if ax.get_visible() and ax.get_legend() is not ax:
                assert _shows_something(ax), (words, ax.get_title())
    open_domain = next(f for f in figures if "Open-domain" in f.axes[0].get_title())
    assert "no judge ran" in open_domain.axes[0].get_title()
    assert [t.get_text() for t in open_domain.axes[0].texts] == ["10%", "10%"]  # the keyword rate, per model


@pytest.mark.parametrize("verdicts", ["classifier", "judge"])
def test_captions_say_whose_verdicts_the_counts_are(verdicts):
    jinja2 = pytest.importorskip("jinja2")
    config = yaml.safe_load((REPORT_DIR.parent / "config" / "config.yaml").read_text())
    config["audit"]["verdicts"] = verdicts
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    snakemake = SimpleNamespace(config=config, wildcards=SimpleNamespace(model="m_int", pset="benchmark"))
    names = ("audit_counts", "audit_deltas", "audit_summary", "audit_table", "drift_by_severity",
             "score_deltas", "main_results")  # fmt: skip
    text = " ".join(
        env.from_string((REPORT_DIR / f"{name}.rst").read_text()).render(snakemake=snakemake)
        for name in names
    )
    judge_says = ("sent to the judge", "the judge confirmed", "confirmed by the judge", "judge's severity")
    if verdicts == "classifier":
        assert not any(phrase in text for phrase in judge_says)
        assert text.count("no judge ran") + text.count("No judge ran") >= 4
    else:
        assert all(phrase in text for phrase in judge_says)
