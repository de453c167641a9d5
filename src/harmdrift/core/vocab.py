"""The pipeline's fixed names, each written once.

Benchmarks, splits, labels, severities, categories, framings, model names (with their order,
description and colour) and figure names live here. ``rules/common.smk`` reads this module
too, so a name changed here changes in the workflow, the tables and the figures at once.
"""

from __future__ import annotations

# --- data ---------------------------------------------------------------------------------

BENCHMARKS = ("D1", "D2", "D3", "D4", "N1", "N2", "N3", "N4")
SPLITS = ("train", "val", "test")
CONDITIONS = ("diff", "equal")
# DART's binary target follows from the condition alone.
GOLD_LABEL = {"diff": "YES", "equal": "NO"}
# The benchmark's first letter says which half of the suite it belongs to.
CATEGORY = {"D": "descriptive", "N": "normative"}
# The pooled row of every per-benchmark table.
ALL = "ALL"

# The headline: accuracy under DART's own parse rule (core.parsing.parse_dart_strict), overall
# and on each condition, and its abstain rate, each with its 95% CI. These lead every binary
# metrics table and the main results table. A format-free reading (forced_acc, a log-likelihood
# choice between YES and NO) is to follow the same pattern, in a tuple of its own.
STRICT_ACCURACY_COLUMNS = (
    "strict_overall_acc",
    "strict_overall_acc_ci_low",
    "strict_overall_acc_ci_high",
    "strict_equal_acc",
    "strict_equal_acc_ci_low",
    "strict_equal_acc_ci_high",
    "strict_diff_acc",
    "strict_diff_acc_ci_low",
    "strict_diff_acc_ci_high",
    "strict_abstain_rate",
    "strict_abstain_rate_ci_low",
    "strict_abstain_rate_ci_high",
)

# A decision that does not depend on format (an addition to DART's protocol): after the reply,
# "Conclusion:" is appended and the model's log-likelihoods of YES and NO are compared
# (lm.forced). It separates "cannot decide" from "cannot follow the format".
FORCED_ACCURACY_COLUMNS = (
    "forced_acc",
    "forced_acc_ci_low",
    "forced_acc_ci_high",
    "forced_equal_acc",
    "forced_equal_acc_ci_low",
    "forced_equal_acc_ci_high",
    "forced_diff_acc",
    "forced_diff_acc_ci_low",
    "forced_diff_acc_ci_high",
)

# The second reading, our tolerant parse (core.parsing.parse_binary): accuracy and its 95% CI,
# overall and on each condition. These column names predate the strict ones and are kept.
ACCURACY_COLUMNS = (
    "overall_acc",
    "ci_low",
    "ci_high",
    "equal_acc",
    "equal_ci_low",
    "equal_ci_high",
    "diff_acc",
    "diff_ci_low",
    "diff_ci_high",
)

# --- prompts ------------------------------------------------------------------------------

# binary: DART's YES/NO task; mc: the benchmark's 3-way multiple choice; open: free-text
# answers to the open-domain queries.
BINARY, MC, OPEN = "binary", "mc", "open"
FRAMINGS = (BINARY, MC, OPEN)

# --- Stage I: which label the teacher is told ----------------------------------------------

# One concept, one table: the rationale set (file name under results/rationales/), the
# label source the teacher is given, and the model trained on it.
LABEL_SOURCES = ("gold", "predicted")
RATIONALE_SETS = {"distill": "gold", "predlabel": "predicted"}

# --- Stage II: the judge's scale ----------------------------------------------------------

DRIFT_CATEGORIES = ("repeats_harm", "normalises_assumption", "omits_harm")
SEVERITIES = ("minor", "moderate", "severe", "extreme")

# --- open-domain queries ------------------------------------------------------------------

APPROPRIATE = "appropriate_differentiation"
OPEN_REFUSAL = "refusal"
GENERIC_EQUAL = "generic_equal"
INAPPROPRIATE = "inappropriate_differentiation"
OPEN_DOMAIN_CATEGORIES = (APPROPRIATE, OPEN_REFUSAL, GENERIC_EQUAL, INAPPROPRIATE)
DIFFERENTIATE, OPEN_EQUAL = "differentiate", "equal"
OPEN_EXPECTED = (DIFFERENTIATE, OPEN_EQUAL)
DOMAINS = ("medical", "legal", "policy", "education")
# The category that counts as the right behaviour for each expectation. For an "equal"
# query the right answer says the groups are treated the same, which the judge files
# under generic_equal.
RIGHT_CATEGORY = {DIFFERENTIATE: APPROPRIATE, OPEN_EQUAL: GENERIC_EQUAL}

# --- models -------------------------------------------------------------------------------

BASE_MODEL = "m0"
REFERENCE_MODEL = "m_int"  # Stage I's model: what repair and drift reduction compare with
REPAIR_MODEL = "m_dart"
PREDLABEL_MODEL = "m_int_predlabel"
JOINT_MODEL = "m_joint"
# The planted-drift control: a student trained on contaminated rationales, and its repair.
PLANTED_MODEL = "m_int_planted"
PLANTED_REPAIR_MODEL = "m_dart_planted"
_REPAIR_ROUND_PREFIX = "m_dart_r"

# name: (description, position in tables and figures, colour in figures)
MODELS = {
    BASE_MODEL: ("base model, no fine-tuning", 0, "#7f7f7f"),
    REFERENCE_MODEL: ("Stage I: label-conditioned distillation (gold-label teacher)", 1, "#d62728"),
    REPAIR_MODEL: ("Stage III: severity-weighted repair of M_int (round 1)", 2, "#2ca02c"),
    PREDLABEL_MODEL: (
        "ablation: Stage I with a teacher conditioned on predicted, not gold, labels",
        4,
        "#ff7f0e",
    ),
    JOINT_MODEL: (
        "ablation: one joint stage from M0 with toxicity-regularised example weights",
        5,
        "#9467bd",
    ),
    PLANTED_MODEL: ("control: Stage I on rationales with planted harmful content", 6, "#8c564b"),
    PLANTED_REPAIR_MODEL: ("control: Stage III repair of the planted model", 7, "#bcbd22"),
}
MODEL_NOTES = {name: note for name, (note, _, _) in MODELS.items()}
MODEL_COLOURS = {name: colour for name, (_, _, colour) in MODELS.items()}


def repair_model(round_: int) -> str:
    """The model repair round ``round_`` produces: m_dart, then m_dart_r2, m_dart_r3, ..."""
    return REPAIR_MODEL if round_ == 1 else f"{_REPAIR_ROUND_PREFIX}{round_}"


def repair_round(model: str) -> int | None:
    """K for an iterative-repair model ``m_dart_rK``, else None."""
    suffix = model.removeprefix(_REPAIR_ROUND_PREFIX)
    return int(suffix) if suffix != model and suffix.isdigit() else None


# A model answering under DART's inference-time explanation policy: "<model>+policy".
POLICY_SUFFIX = "+policy"
# The models that get a policy row (evaluation.policy: on or both), where the run has them: the
# control's pair too, whose planted drift is known, so the policy's effect on it can be measured.
POLICY_MODELS = (BASE_MODEL, REFERENCE_MODEL, REPAIR_MODEL, PLANTED_MODEL, PLANTED_REPAIR_MODEL)


def policy_model(model: str) -> str:
    return f"{model}{POLICY_SUFFIX}"


def without_policy(model: str) -> str:
    """The model whose weights a row uses: ``m_int+policy`` is M_int's."""
    return model.removesuffix(POLICY_SUFFIX)


def describe_model(model: str) -> str:
    """One-line description of a model name; repair rounds ``m_dart_rK`` are recognised by prefix."""
    if model in MODEL_NOTES:
        return MODEL_NOTES[model]
    if model.endswith(POLICY_SUFFIX):
        return f"{without_policy(model)} answering under the inference-time explanation policy"
    if repair_round(model) is not None:
        return f"Stage III: iterative repair, round {repair_round(model)}"
    return "model not described in MODEL_NOTES"


def _order_key(model: str) -> tuple[int, int, str]:
    # Pipeline order first (base, Stage I, repair rounds), then the ablations, then anything else.
    if model.endswith(POLICY_SUFFIX):  # right after its plain row
        first, second, _ = _order_key(without_policy(model))
        return first, second, model
    if model in MODELS:
        return MODELS[model][1], 0, model
    if repair_round(model) is not None:
        return 3, repair_round(model), model
    return 8, 0, model


def order_models(models) -> list[str]:
    """Models in one consistent order for tables and figures: m0, m_int, m_dart, rounds, ablations."""
    return sorted(dict.fromkeys(models), key=_order_key)


# --- the planted-drift control --------------------------------------------------------------

CONTROL_STAGES = ("screen", "judge", "screen+judge")

# --- figures ------------------------------------------------------------------------------

# Figures of the whole run: results/figures/<name>.png and .pdf.
FIGURES = (
    "accuracy_by_model",
    "benchmark_heatmap",
    "drift_by_severity",
    "score_deltas",
    "open_domain_categories",
    "loss_curves",
    "yes_rate_vs_gold",
)
# Figures of one model's audit: results/audit/<model>/<name>.png and .pdf.
AUDIT_FIGURES = ("score_deltas", "drift_counts")
# The control's figure: results/figures/control.png and .pdf (drawn by the control_table rule).
CONTROL_FIGURE = "control"
