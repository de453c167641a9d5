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

from harmdrift.config import validate_config, student_spec, teacher_spec
from harmdrift.models import EMBEDDED_MODELS, resolve_load_path

# Fails here, before any job starts, with every bad key named.
validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")

SPLITS = ["train", "val", "test"]
FRAMINGS = config["evaluation"]["framings"]
EVAL_SPLIT = config["evaluation"]["split"]
# Each fine-tuned model and the rationale set it is trained on (Stage I); M0 is the
# base model alone. Later stages add m_dart and the ablations here.
TRAINING_DATA = {"m_int": "distill"}
if config["distill"]["predicted_label"]:
    TRAINING_DATA["m_int_predlabel"] = "predlabel"
MODELS = ["m0", *TRAINING_DATA]
# Rationale sets: whether the teacher is told the gold label or first predicts its own
# (then the prompt asking for that prediction is an input too).
LABEL_SOURCES = {"distill": "gold", "predlabel": "predicted"}
PREDICT_PROMPTS = {"distill": [], "predlabel": "config/prompts/teacher_predict.txt"}
STUDENT = student_spec(config)
TEACHER = teacher_spec(config)


wildcard_constraints:
    model="|".join(MODELS),
    split="|".join(SPLITS),
    source="|".join(LABEL_SOURCES),
    framing="binary|mc",
    embedded="|".join(EMBEDDED_MODELS),


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
    return None if model == "m0" else f"results/adapters/{model}"


def get_adapter_files(wildcards):
    """The adapter weights a generation job needs, so training runs first."""
    adapter = get_adapter(wildcards.model)
    return [f"{adapter}/adapter_model.safetensors"] if adapter else []


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


def get_final_outputs():
    return ["results/data/split_summary.csv"] + [
        out for m in MODELS for out in metrics_outputs(m)
    ]
