import os
import sys
from pathlib import Path

# Jobs import the harmdrift package from src/. Putting it on PYTHONPATH here (rather than
# relying on `pip install -e .`) also makes it importable inside per-rule conda envs.
_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC)
# A user's own PYTHONPATH is kept behind ours (read through a mapping copy, so the linter
# does not mistake it for a variable the workflow requires).
_ENV = dict(os.environ)
os.environ.update(
    {"PYTHONPATH": os.pathsep.join(p for p in (_SRC, _ENV.get("PYTHONPATH")) if p)}
)

from snakemake.exceptions import WorkflowError

from harmdrift.config import validate_config, student_spec, teacher_spec
from harmdrift.lm.refs import EMBEDDED_MODELS, parse_model_spec, resolve_load_path
from harmdrift.core import vocab

# Fails here, before any job starts, with every bad key named.
validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")

SPLITS = list(vocab.SPLITS)
FRAMINGS = config["evaluation"]["framings"]
EVAL_SPLIT = config["evaluation"]["split"]
AUDIT_SPLIT = config["audit"]["split"]
# DART's code audited and repaired on the test split itself; auditing a held-out split
# keeps every repair example out of the test numbers.
PROTOCOL = "transductive" if AUDIT_SPLIT == EVAL_SPLIT else "held-out"
# Each fine-tuned model and the training file it learns from; M0 is the base model alone.
TRAINING_DATA = {vocab.REFERENCE_MODEL: "results/rationales/distill.jsonl"}
if config["distill"]["predicted_label"]:
    TRAINING_DATA[vocab.PREDLABEL_MODEL] = "results/rationales/predlabel.jsonl"
if config["joint"]["enabled"]:
    TRAINING_DATA[vocab.JOINT_MODEL] = "results/joint/train.jsonl"
# Stage III: each repair round continues from the previous model's adapter and is
# trained on the drift its audit found (m_dart, then m_dart_r2, ... when rounds > 1).
REPAIR_PARENT = {}
for _round in range(1, config["repair"]["rounds"] + 1):
    _name = vocab.repair_model(_round)
    REPAIR_PARENT[_name] = (
        vocab.REFERENCE_MODEL if _round == 1 else list(REPAIR_PARENT)[-1]
    )
    TRAINING_DATA[_name] = f"results/repair/{_name}/train.jsonl"
# The planted-drift control: a student trained on contaminated Stage I rationales, audited
# against M0 and repaired like M_int, with ground truth for what the audit should find.
CONTROL = config["control"]["enabled"]
if CONTROL:
    TRAINING_DATA[vocab.PLANTED_MODEL] = "results/control/train.jsonl"
    REPAIR_PARENT[vocab.PLANTED_REPAIR_MODEL] = vocab.PLANTED_MODEL
    TRAINING_DATA[vocab.PLANTED_REPAIR_MODEL] = (
        f"results/repair/{vocab.PLANTED_REPAIR_MODEL}/train.jsonl"
    )
MODELS = [vocab.BASE_MODEL, *TRAINING_DATA]
AUDITED = MODELS[1:]
# Rationale sets: whether the teacher is told the gold label or first predicts its own
# (then the prompt asking for that prediction is an input too).
LABEL_SOURCES = vocab.RATIONALE_SETS
PREDICT_PROMPTS = {"distill": [], "predlabel": "config/prompts/teacher_predict.txt"}
STUDENT = student_spec(config)
TEACHER = teacher_spec(config)


wildcard_constraints:
    model="|".join(MODELS),
    split="|".join([*SPLITS, "open_domain"]),
    source="|".join(LABEL_SOURCES),
    framing="binary|mc|open",
    embedded="|".join(EMBEDDED_MODELS),


def all_cores():
    """Threads for a job that should own the machine: every core Snakemake was given.

    Commands that run no job (`snakemake --report`, `--unlock`, `--list-rules`) are given no
    cores, and reading workflow.cores then raises; they only need a number, so they get 1.
    """
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def student_load_path():
    """What from_pretrained gets for the student: a converted folder, a local path or a hub id."""
    return resolve_load_path(STUDENT)


def get_student_files(wildcards):
    """The conversion output when the student is embedded (so the DAG builds it first)."""
    return [student_load_path()] if STUDENT.kind == "embedded" else []


def teacher_load_path():
    """What the hf teacher loads (None for an API teacher)."""
    return resolve_load_path(TEACHER) if TEACHER is not None else None


def get_teacher_files(wildcards):
    """The conversion output when the teacher is an embedded model."""
    return (
        [teacher_load_path()]
        if TEACHER is not None and TEACHER.kind == "embedded"
        else []
    )


def get_adapter(model):
    """The LoRA adapter folder a model name stands for; M0 is the base model alone."""
    return None if model == vocab.BASE_MODEL else f"results/adapters/{model}"


def get_adapter_files(wildcards):
    """The adapter weights a generation job needs, so training runs first."""
    adapter = get_adapter(wildcards.model)
    return [f"{adapter}/adapter_model.safetensors"] if adapter else []


def get_init_adapter(model):
    """The adapter a model's training continues from (repair rounds), else None."""
    parent = REPAIR_PARENT.get(model)
    return get_adapter(parent) if parent else None


def get_stage1_data(wildcards):
    """The Stage I training set at the root of a repair model's lineage: its replay share
    comes from the data its Stage I model learned from (the planted set for the control).
    """
    model = wildcards.model
    while model in REPAIR_PARENT:
        model = REPAIR_PARENT[model]
    return TRAINING_DATA[model]


def training_params(wildcards):
    """The training section one model trains with: the control's Stage I student takes
    control.training's overrides on top (the smoke profile gives it more steps, since three
    steps teach a student nothing to plant); every other model trains as configured."""
    if wildcards.model == vocab.PLANTED_MODEL:
        return {**config["training"], **config["control"]["training"]}
    return config["training"]


def get_init_adapter_files(wildcards):
    init = get_init_adapter(wildcards.model)
    return [f"{init}/adapter_model.safetensors"] if init else []


def get_judge_files(wildcards):
    """The conversion output when the judge is an embedded model."""
    judge = config["audit"]["judge"]
    if judge["backend"] != "hf":
        return []
    spec = parse_model_spec(judge["model"], key="audit.judge.model")
    return [resolve_load_path(spec)] if spec.kind == "embedded" else []


def scorer_params():
    """The audit keys a toxicity-scoring job reads; judge settings stay out, so editing
    them does not re-score anything."""
    return {k: config["audit"][k] for k in ("scorer", "max_chars")}


def open_judge_params():
    """The judge settings open-domain sorting uses (not the audit-only combine rule,
    scope or check-set floor)."""
    audit_only = {"combine", "scope", "check_floor"}
    return {k: v for k, v in config["audit"]["judge"].items() if k not in audit_only}


def generation_params(wildcards):
    """Only this framing's token budget, so editing the other framing's budget re-runs nothing here."""
    gen = dict(config["generation"])
    gen["max_new_tokens"] = {
        wildcards.framing: gen["max_new_tokens"][wildcards.framing]
    }
    return gen


def metrics_outputs(model):
    outputs = []
    if "binary" in FRAMINGS:
        outputs += [
            f"results/tables/metrics_{model}.csv",
            f"results/tables/metrics_{model}.md",
        ]
    if "mc" in FRAMINGS:
        outputs += [
            f"results/tables/metrics_{model}_mc.csv",
            f"results/tables/metrics_{model}_mc.md",
        ]
    return outputs


# Figures of the whole run (results/figures/<name>.png and .pdf).
FIGURES = list(vocab.FIGURES)


# The control pair answers the benchmark splits only: its question is whether the audit
# and the repair see planted drift, which open-domain answers do not bear on, and leaving
# them out spares two generation and two sorting jobs of the CPU run.
OPEN_DOMAIN_MODELS = [
    m for m in MODELS if m not in (vocab.PLANTED_MODEL, vocab.PLANTED_REPAIR_MODEL)
]


def open_domain_rates():
    """The open-domain rates of every model but the control pair: the judge's categories
    when the audit trusts a judge, else the keyword refusal rate alone."""
    return [f"results/open_domain/{m}.rates.csv" for m in OPEN_DOMAIN_MODELS]


def get_final_outputs():
    return [
        "results/data/split_summary.csv",
        *[out for m in MODELS for out in metrics_outputs(m)],
        *[f"results/audit/{m}/audit.csv" for m in AUDITED],
        *open_domain_rates(),
        "results/tables/main_results.csv",
        "results/tables/main_results.md",
        "results/tables/paper_comparison.md",
        *(
            [
                "results/tables/control.csv",
                f"results/figures/{vocab.CONTROL_FIGURE}.png",
            ]
            if CONTROL
            else []
        ),
        *[
            f"results/figures/{name}.{ext}"
            for name in FIGURES
            for ext in ("png", "pdf")
        ],
    ]
