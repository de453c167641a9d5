import os
import sys
from pathlib import Path

# Jobs import the harmdrift package from src/. Putting it on PYTHONPATH here (rather than
# relying on `pip install -e .`) also makes it importable inside per-rule conda envs.
_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_SRC, os.environ.get("PYTHONPATH", "")) if p
)

from harmdrift.config import validate_config, student_spec
from harmdrift.models import EMBEDDED_MODELS, resolve_load_path

# Fails here, before any job starts, with every bad key named.
validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")

SPLITS = ["train", "val", "test"]
FRAMINGS = config["evaluation"]["framings"]
EVAL_SPLIT = config["evaluation"]["split"]
# Models that later stages add (m_int, m_dart, ablations) are appended here.
MODELS = ["m0"]
STUDENT = student_spec(config)


wildcard_constraints:
    model="|".join(MODELS),
    split="|".join(SPLITS),
    framing="binary|mc",
    embedded="|".join(EMBEDDED_MODELS),


def student_load_path():
    """What from_pretrained gets for the student: a converted folder, a local path or a hub id."""
    return resolve_load_path(STUDENT)


def get_student_files(wildcards):
    """The conversion output when the student is embedded (so the DAG builds it first)."""
    return [student_load_path()] if STUDENT.kind == "embedded" else []


def get_adapter(model):
    """The LoRA adapter folder a model name stands for; M0 is the base model alone."""
    return None


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
