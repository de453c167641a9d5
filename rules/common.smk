import os
import re
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

from harmdrift.config import (
    check_api_keys,
    judge_spec,
    validate_config,
    student_spec,
    teacher_spec,
)
from harmdrift.finetune.spec import (
    check_prompt_files,
    finetune_entries,
    framing_for,
    template_for,
)
from harmdrift.lm.refs import EMBEDDED_MODELS, parse_model_spec, resolve_load_path
from harmdrift.core import vocab
from harmdrift.core.io import DataError
from harmdrift.data.load import load_benchmarks

# Fails here, before any job starts, with every bad key named. An unset API key variable is
# only a warning while parsing (a dry run, --report or --unlock sends no request); onstart
# below makes it an error once jobs are about to run.
validate_config(
    config, Path(workflow.basedir) / "config" / "schema.yaml", defer_api_keys=True
)
if workflow.is_main_process:
    # Every data line is checked here (16,000 items in about 0.3 s), not first in the
    # write_splits job: Snakemake deletes a job's old outputs when it starts, so a bad line
    # found there would cost the splits of the last good run.
    try:
        load_benchmarks(config["data"]["dir"], config["data"]["benchmarks"])
    except DataError as err:
        raise WorkflowError(f"config key data.dir: {err}") from None
    # The fine-tunes' own prompt files likewise, every line.
    if _prompt_problems := check_prompt_files(config):
        raise WorkflowError("\n".join(_prompt_problems))

# One folder per run (run.name): results/<name>/, logs/<name>/, benchmarks/<name>/, so
# profiles never overwrite each other. Caches under cache_dir are shared (content-hashed).
RUN = config["run"]["name"]
RESULTS = f"results/{RUN}/"
LOGS = f"logs/{RUN}/"
BENCHMARKS = f"benchmarks/{RUN}/"
# Converted embedded models, per run like every other output.
MODELS_ROOT = f"{RESULTS}models"
# Fine-tunes the pipeline did not train (rules/finetune.smk): their audits and repairs.
FINETUNE_DIR = f"{RESULTS}finetunes/"
PROMPT_SETS = config["prompt_sets"]
FINETUNES = finetune_entries(
    config, repair_dir=lambda name: f"{FINETUNE_DIR}{name}/repair/adapter"
)

SPLITS = list(vocab.SPLITS)
FRAMINGS = config["evaluation"]["framings"]
EVAL_SPLIT = config["evaluation"]["split"]
AUDIT_SPLIT = config["audit"]["split"]
# DART's code audited and repaired on the test split itself; auditing a held-out split
# keeps every repair example out of the test numbers.
PROTOCOL = "transductive" if AUDIT_SPLIT == EVAL_SPLIT else "held-out"
# Each fine-tuned model and the training file it learns from; M0 is the base model alone.
TRAINING_DATA = {vocab.REFERENCE_MODEL: f"{RESULTS}rationales/distill.jsonl"}
if config["distill"]["predicted_label"]:
    TRAINING_DATA[vocab.PREDLABEL_MODEL] = f"{RESULTS}rationales/predlabel.jsonl"
if config["joint"]["enabled"]:
    TRAINING_DATA[vocab.JOINT_MODEL] = f"{RESULTS}joint/train.jsonl"
# Stage III: each repair round continues from the previous model's adapter and is
# trained on the drift its audit found (m_dart, then m_dart_r2, ... when rounds > 1).
REPAIR_PARENT = {}
for _round in range(1, config["repair"]["rounds"] + 1):
    _name = vocab.repair_model(_round)
    REPAIR_PARENT[_name] = (
        vocab.REFERENCE_MODEL if _round == 1 else list(REPAIR_PARENT)[-1]
    )
    TRAINING_DATA[_name] = f"{RESULTS}repair/{_name}/train.jsonl"
# The planted-drift control: a student trained on contaminated Stage I rationales, audited
# against M0 and repaired like M_int, with ground truth for what the audit should find.
CONTROL = config["control"]["enabled"]
if CONTROL:
    TRAINING_DATA[vocab.PLANTED_MODEL] = f"{RESULTS}control/train.jsonl"
    REPAIR_PARENT[vocab.PLANTED_REPAIR_MODEL] = vocab.PLANTED_MODEL
    TRAINING_DATA[vocab.PLANTED_REPAIR_MODEL] = (
        f"{RESULTS}repair/{vocab.PLANTED_REPAIR_MODEL}/train.jsonl"
    )
# The models trained here (each has an adapter), and the rows answering under DART's
# inference-time explanation policy (evaluation.policy): the same weights with the policy's
# system prompt, audited against M0 under the same policy.
TRAINED = list(TRAINING_DATA)
POLICY_ROWS = (
    [
        vocab.policy_model(m)
        for m in vocab.POLICY_MODELS
        if m in [vocab.BASE_MODEL, *TRAINED]
    ]
    if config["evaluation"]["policy"] != "off"
    else []
)
MODELS = [vocab.BASE_MODEL, *TRAINED, *POLICY_ROWS]
AUDITED = [m for m in MODELS if vocab.without_policy(m) != vocab.BASE_MODEL]
# Rationale sets: whether the teacher is told the gold label or first predicts its own
# (then the prompt asking for that prediction is an input too).
LABEL_SOURCES = vocab.RATIONALE_SETS
PREDICT_PROMPTS = {"distill": [], "predlabel": "config/prompts/teacher_predict.txt"}
STUDENT = student_spec(config)
TEACHER = teacher_spec(config)
JUDGE = judge_spec(config)


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    split="|".join([*SPLITS, "open_domain"]),
    source="|".join(LABEL_SOURCES),
    framing="|".join(vocab.FRAMINGS),
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
    return resolve_load_path(STUDENT, MODELS_ROOT)


def model_files(spec):
    """The files a local model job reads for ``spec``, as inputs: the conversion output of an
    embedded model (so the DAG builds it first) or a local folder (so replacing its weights
    re-runs the jobs that load it); a hub model has none."""
    if spec is None or spec.kind == "hub":
        return []
    return [resolve_load_path(spec, MODELS_ROOT)]


def get_student_files(wildcards):
    return model_files(STUDENT)


def teacher_load_path():
    """What the hf teacher loads (None for an API teacher)."""
    return resolve_load_path(TEACHER, MODELS_ROOT) if TEACHER is not None else None


def get_teacher_files(wildcards):
    return model_files(TEACHER)


def get_adapter(model):
    """The LoRA adapter folder a model name stands for; M0 is the base model alone, and a
    policy row uses its plain model's weights."""
    model = vocab.without_policy(model)
    return None if model == vocab.BASE_MODEL else f"{RESULTS}adapters/{model}"


def audit_base(model):
    """What a model is audited against: M0, under the policy for a policy row."""
    if model.endswith(vocab.POLICY_SUFFIX):
        return vocab.policy_model(vocab.BASE_MODEL)
    return vocab.BASE_MODEL


def policy_prompt(wildcards):
    """The explanation policy's prompt file for a policy row's generations, else nothing."""
    return (
        [config["prompts"]["policy"]]
        if wildcards.model.endswith(vocab.POLICY_SUFFIX)
        else []
    )


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
    return model_files(JUDGE)


def get_scorer_files(wildcards):
    """The toxicity scorer's own files, when they are the user's: a Detoxify checkpoint or a
    local classifier folder (the embedded scorer ships inside its wheel)."""
    scorer = config["audit"]["scorer"]
    if scorer["kind"] == "detoxify" and scorer["checkpoint"]:
        return [os.path.expanduser(scorer["checkpoint"])]
    if scorer["kind"] == "hf" and scorer["model"] and Path(scorer["model"]).is_dir():
        return [scorer["model"]]
    return []


def config_slice(path, *, keep=None, drop=()):
    """The keys of one config section (dotted ``path``) that a job reads, for its params.

    Snakemake re-runs a job when its params change, so a job given a whole section re-runs
    for keys it never reads (PyPSA-Eur's config_provider answers the same need). ``keep``
    names the keys to pass (default: all), ``drop`` those to leave out.
    """
    section = config
    for part in path.split("."):
        section = section[part]
    names = section if keep is None else keep
    return {k: section[k] for k in names if k not in drop}


def audit_summary_params():
    """What an audit summary reports besides the counts: the screen's and the judge's settings
    (not the judge's decoding, its check set or its floor, which reach it through files).
    """
    judge_keys = ("backend", "model", "base_url", "combine", "scope")
    return {
        **config_slice("audit", keep=("delta", "max_chars", "verdicts", "scorer")),
        "judge": config_slice("audit.judge", keep=judge_keys),
    }


def scorer_params():
    """The audit keys a toxicity-scoring job reads; judge settings stay out, so editing
    them does not re-score anything."""
    return config_slice("audit", keep=("scorer", "max_chars"))


def open_judge_params():
    """The judge settings open-domain sorting uses (not the audit-only combine rule,
    scope or check-set floor)."""
    return config_slice("audit.judge", drop=("combine", "scope", "check_floor"))


def generation_params(wildcards):
    """Only this framing's token budget, so editing the other framing's budget re-runs nothing here."""
    gen = dict(config["generation"])
    gen["max_new_tokens"] = {
        wildcards.framing: gen["max_new_tokens"][wildcards.framing]
    }
    return gen


def metrics_outputs(model):
    outputs = []
    if vocab.BINARY in FRAMINGS:
        outputs += [
            f"{RESULTS}tables/metrics_{model}.csv",
            f"{RESULTS}tables/metrics_{model}.md",
        ]
    if vocab.MC in FRAMINGS:
        outputs += [
            f"{RESULTS}tables/metrics_{model}_mc.csv",
            f"{RESULTS}tables/metrics_{model}_mc.md",
        ]
    return outputs


# Figures of the whole run (results/figures/<name>.png and .pdf).
FIGURES = list(vocab.FIGURES)


# The control pair answers the benchmark splits only: its question is whether the audit
# and the repair see planted drift, which open-domain answers do not bear on, and leaving
# them out spares two generation and two sorting jobs of the CPU run.
OPEN_DOMAIN_MODELS = [
    m
    for m in MODELS
    if m not in (vocab.PLANTED_MODEL, vocab.PLANTED_REPAIR_MODEL, *POLICY_ROWS)
]


def open_domain_rates():
    """The open-domain rates of every model but the control pair: the judge's categories
    when the audit trusts a judge, else the keyword refusal rate alone."""
    return [f"{RESULTS}open_domain/{m}.rates.csv" for m in OPEN_DOMAIN_MODELS]


def rationale_sources():
    """The Stage I rationale sets this run writes (the predlabel ablation adds its own)."""
    return ["distill", *(["predlabel"] if config["distill"]["predicted_label"] else [])]


def answer_files():
    """Every generation file: the scored split in each framing, the audited split's binary
    answers, and the open-domain answers."""
    files = [
        f"{RESULTS}generate/{m}/{EVAL_SPLIT}.{framing}.jsonl"
        for m in MODELS
        for framing in FRAMINGS
    ]
    files += [
        f"{RESULTS}generate/{m}/{AUDIT_SPLIT}.{vocab.BINARY}.jsonl" for m in MODELS
    ]
    files += [
        f"{RESULTS}generate/{m}/open_domain.{vocab.OPEN}.jsonl"
        for m in OPEN_DOMAIN_MODELS
    ]
    return list(dict.fromkeys(files))


def audit_files(model):
    """Everything one model's Stage II audit writes."""
    names = ["pairs.jsonl", "judgments.jsonl", "judge_usage.json", "audit.csv"]
    names += ["summary.json", "summary.md"]
    names += [f"{fig}.{ext}" for fig in vocab.AUDIT_FIGURES for ext in ("png", "pdf")]
    return [f"{RESULTS}audit/{model}/{name}" for name in names]


# What train_adapter writes into an adapter folder.
ADAPTER_FILES = [
    "adapter_model.safetensors",
    "adapter_config.json",
    "train_config.json",
    "loss.csv",
    "loss.png",
]


def get_final_outputs():
    """Every deliverable of the run (the README's file table): rule all asks for each, so one
    that goes missing, a failed job's say, is rebuilt by the next run."""
    repair_files = [
        "rationales.jsonl",
        "rationales.dropped.jsonl",
        "rationales.summary.json",
        "rationales.usage.json",
        "train.jsonl",
        "train.summary.json",
    ]
    return [
        *expand(f"{RESULTS}data/splits/{{split}}.jsonl", split=SPLITS),
        f"{RESULTS}data/splits/provenance.json",
        f"{RESULTS}data/split_summary.csv",
        *[
            f"{RESULTS}rationales/{source}{suffix}"
            for source in rationale_sources()
            for suffix in (".jsonl", ".dropped.jsonl", ".summary.json", ".usage.json")
        ],
        *[f"{RESULTS}adapters/{m}/{name}" for m in TRAINED for name in ADAPTER_FILES],
        *answer_files(),
        *[out for m in MODELS for out in metrics_outputs(m)],
        f"{RESULTS}audit/check_pairs.jsonl",
        f"{RESULTS}audit/judge_check.json",
        *[out for m in AUDITED for out in audit_files(m)],
        *[
            f"{RESULTS}repair/{m}/{name}"
            for m in REPAIR_PARENT
            for name in repair_files
        ],
        *(
            [f"{RESULTS}joint/train.jsonl", f"{RESULTS}joint/train.summary.json"]
            if config["joint"]["enabled"]
            else []
        ),
        f"{RESULTS}data/splits/open_domain.jsonl",
        *[
            f"{RESULTS}open_domain/{m}{suffix}"
            for m in OPEN_DOMAIN_MODELS
            for suffix in (".jsonl", ".rates.csv", ".usage.json")
        ],
        f"{RESULTS}tables/main_results.csv",
        f"{RESULTS}tables/main_results.md",
        f"{RESULTS}tables/paper_comparison.md",
        *(
            [
                f"{RESULTS}control/train.jsonl",
                f"{RESULTS}control/planted.jsonl",
                f"{RESULTS}control/planted.summary.json",
                f"{RESULTS}control/truth.json",
                f"{RESULTS}tables/control.csv",
                f"{RESULTS}figures/{vocab.CONTROL_FIGURE}.png",
                f"{RESULTS}figures/{vocab.CONTROL_FIGURE}.pdf",
            ]
            if CONTROL
            else []
        ),
        *[
            f"{RESULTS}figures/{name}.{ext}"
            for name in FIGURES
            for ext in ("png", "pdf")
        ],
        *finetune_outputs(),
    ]


# Fine-tunes the pipeline did not train (rules/finetune.smk).
FT_NAMES = list(FINETUNES) or ["__none__"]
FT_REPAIRED = [n for n, ft in FINETUNES.items() if ft.repair] or ["__none__"]
FT_LOCAL_REPAIRED = [
    n for n in FT_REPAIRED if n in FINETUNES and FINETUNES[n].local
] or ["__none__"]
FT_API_REPAIRED = [
    n for n in FT_REPAIRED if n in FINETUNES and not FINETUNES[n].local
] or ["__none__"]
PROMPT_SET_NAMES = list(PROMPT_SETS) or ["__none__"]


def prompt_set_source(wildcards):
    """What a prompt set is read from: this run's audit split or open-domain sample, or the
    user's file (a BOLD folder's prompt files)."""
    entry = PROMPT_SETS[wildcards.pset]
    if entry["format"] == "benchmark":
        return f"{RESULTS}data/splits/{AUDIT_SPLIT}.jsonl"
    if entry["format"] == "open":
        return f"{RESULTS}data/splits/open_domain.jsonl"
    return entry["path"]


def prompt_set_files(wildcards):
    """The source as inputs, so editing the user's file re-runs its audits (each BOLD file)."""
    source = Path(prompt_set_source(wildcards))
    return (
        sorted(str(p) for p in source.glob("*_prompt.json"))
        if source.is_dir()
        else [str(source)]
    )


def prompt_set_template(wildcards):
    return template_for(PROMPT_SETS[wildcards.pset], config["prompts"])


def finetune_side(name, side):
    """How one side of fine-tune ``name`` is reached (rule finetune_answers' ``side``)."""
    ft = FINETUNES[name]
    if not ft.local:
        entry = config["finetunes"][name]
        return {
            "backend": "openai",
            "section": api_finetune_section(
                entry, ft.load if side == "tuned" else ft.base
            ),
        }
    model, revision = (
        (ft.load, ft.revision) if side == "tuned" else (ft.base, ft.base_revision)
    )
    student = {**config["student"], "model": model, "revision": revision}
    spec = parse_model_spec(model, key=f"finetunes.{name}")
    return {
        "backend": "hf",
        "student": student,
        "load_path": resolve_load_path(spec, MODELS_ROOT),
        "adapter": ft.adapter if side == "tuned" else None,
    }


def adapter_inputs(folder):
    """An adapter folder's config and weights, as inputs (the repair's is built first)."""
    if folder.startswith(FINETUNE_DIR):
        return [f"{folder}/adapter_model.safetensors"]
    found = sorted(str(p) for p in Path(folder).expanduser().glob("adapter_model.*"))
    return [str(Path(folder).expanduser() / "adapter_config.json"), *found]


def side_files(name, side):
    """The files one side of a local fine-tune loads: its model's and its adapter's."""
    side = finetune_side(name, side)
    if side["backend"] != "hf":
        return []
    files = model_files(
        parse_model_spec(side["student"]["model"], key=f"finetunes.{name}")
    )
    return files + (adapter_inputs(side["adapter"]) if side["adapter"] else [])


def finetune_side_files(wildcards):
    return side_files(wildcards.model, wildcards.side)


def api_finetune_section(entry, model):
    """A chat back-end section for one model of an API fine-tune pair (both on one server)."""
    keys = ("base_url", "api_key_env", "concurrency", "max_retries", "timeout_s")
    return {
        "backend": "openai", "model": model, **{k: entry[k] for k in keys}, "revision": None,
        "dtype": "auto", "device": "auto", "quantization": "none", "batch_size": 1,
        "price_prompt_per_mtok": None, "price_completion_per_mtok": None, "cache": True,
    }  # fmt: skip


def finetune_section(wildcards):
    """The config section of the model a fine-tune job runs (for threads and resources)."""
    ft = FINETUNES[wildcards.model]
    if ft.local:
        return student_section()
    return api_finetune_section(config["finetunes"][ft.name], ft.load)


def base_answers(model, pset):
    """The base side of a fine-tune's pairs: a repaired fine-tune shares its parent's (the same
    base, prompts and decoding), so the base answers each prompt set once."""
    owner = FINETUNES[model].parent or model
    return f"{FINETUNE_DIR}{owner}/{pset}/base.jsonl"


def repair_student(wildcards):
    """The student section a local fine-tune's repair trains: its own model (base or checkpoint)."""
    return finetune_side(wildcards.model, "tuned")


def finetune_outputs():
    """Every fine-tune deliverable: each audit's files, and each repair's."""
    audit_names = [
        "base.jsonl", "tuned.jsonl", "pairs.jsonl", "judgments.jsonl", "judge_usage.json", "audit.csv",
        "summary.json", "summary.md",
        *[f"{fig}.{ext}" for fig in vocab.AUDIT_FIGURES for ext in ("png", "pdf")],
    ]  # fmt: skip
    outputs = [
        f"{FINETUNE_DIR}{name}/{pset}/{file}"
        for name, ft in FINETUNES.items()
        for pset in ft.prompt_sets
        for file in audit_names
        if not (file == "base.jsonl" and ft.parent)  # the parent's is used
    ]
    rationale_files = ["rationales.jsonl", "rationales.dropped.jsonl", "rationales.summary.json",
                       "rationales.usage.json", "train.jsonl", "train.summary.json"]  # fmt: skip
    for name, ft in FINETUNES.items():
        if not ft.repair:
            continue
        outputs += [f"{FINETUNE_DIR}{name}/repair/{file}" for file in rationale_files]
        if ft.local:
            outputs += [
                f"{FINETUNE_DIR}{name}/repair/adapter/{file}" for file in ADAPTER_FILES
            ]
        else:
            outputs += [
                f"{FINETUNE_DIR}{name}/repair/chat.jsonl",
                f"{FINETUNE_DIR}{name}/repair/chat.summary.json",
            ]
    return outputs
