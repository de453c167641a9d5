# What each job asks a scheduler for: CPU threads, memory (mem_mb), wall time (runtime,
# minutes) and GPUs. Locally these only matter when --resources caps them; on a cluster
# (profiles/slurm) they become each job's sbatch request.
#
# The sizes come from measurement. Every job of two reference runs wrote its wall time
# and peak RSS (benchmarks/*.tsv, .snakemake/metadata): the default profile and the smoke
# profile, both with the embedded SmolLM2-135M on 2 CPU cores (2026-11-28 and
# 2026-12-01; the figures are in COSTS below). A job's cost is then start-up plus a
# per-unit cost times this profile's units (items, items x reply tokens, training
# examples x epochs), twice that as headroom, and twice again on each retry
# (--retries). Other models scale by parameter count, and a GPU is assumed to be
# GPU_SPEEDUP times faster than the 2 reference cores: an assumption, not a measurement
# (no GPU run yet). Any request is overridable from a profile: set-resources,
# set-threads, max-threads.
import functools
import math
import re
import shutil

# Twice the worst reference measurement, so a slow node or a longer reply still fits.
HEADROOM = 2
# Smallest requests: below these the scheduler's own overhead dominates.
MIN_RUNTIME_MIN = 10
MIN_MEM_MB = 1024
# The model every reference measurement ran (SmolLM2-135M), in billions of parameters.
REFERENCE_PARAMS_B = 0.135
# A model whose size cannot be read from its name is taken to be this big (Llama-3-8B,
# the paper's student).
ASSUMED_PARAMS_B = 8.0
# Assumed speed-up of one data-centre GPU (A100/H100, bf16) over the 2 reference CPU
# cores, per parameter and token: their peak rates differ about 3000x (~300 vs ~0.1
# TFLOP/s); a tenth of that is taken to be reached.
GPU_SPEEDUP = 300
# Host memory per parameter while a model loads: bf16 weights (2 bytes) on a GPU job,
# fp32 (4 bytes) on CPU, the worst case of dtype: auto. With quantization: 4bit the NF4
# weights take about 0.5 bytes a parameter (plus an 8-bit scale per 64), but
# - a GPU job's host memory stays that of bf16: transformers maps every shard of the bf16
#   checkpoint until the load ends and the weights are quantised on the card (the 4-bit load
#   held all 5 shards of a 203M-parameter checkpoint at its peak, measured on the CPU, whose
#   path is the same loader), so the saving is GPU memory (below);
# - on a CPU job, 3 bytes (a measurement): loading a 203M-parameter random Llama from bf16
#   safetensors on 2 cores (2026-12-06, transformers 5.23, bitsandbytes 0.50.2) peaked
#   1.2-2.5 bytes a parameter lower in 4bit than in fp32, not 3.5: the embeddings stay in
#   the fp32 compute dtype, quantising allocates fp32 temporaries, and the checkpoint's
#   pages are mapped while it loads. Four LoRA steps after the load peaked below the load.
BYTES_PER_PARAM = {"gpu": 2, "cpu": 4, "cpu_4bit": 3}
# 4bit on a CPU, same model, runs alternating with fp32 (2026-12-06, 2 cores, nothing else
# running): decoding 1.2-1.8x slower (35-50 against 57-63 new tokens/s, batch 8, five runs
# each; the slowest ratio is taken), LoRA steps as fast (89-96 against 89-107 tokens/s),
# and the load 2.3-3.1 s longer for 0.2B parameters (bitsandbytes quantises on the CPU):
# about 15 s per billion. On a GPU NF4's cost is not measured yet (perf/gpu_check.sh
# measures it on a lent GPU), so GPU_SPEEDUP stands for both.
CPU_4BIT_DECODE_SLOWDOWN = 1.8
CPU_4BIT_LOAD_S_PER_B = 15
# GPU memory, which no request holds (SLURM asks for a GPU count, not its memory; pick the
# partition or gpu_model in profiles/slurm): an estimate for config/paper.yaml's student,
# Llama-3-8B-Instruct, from its architecture (8.03B parameters: 6.98B in the blocks' linear
# layers, 1.05B in the untied embeddings and output layer; bf16 KV cache 128 KiB a token),
# not a measurement (no GPU run at this size):
# - weights: 16.1 GB in bf16; 5.7 GB in 4bit (3.6 GB of NF4 linears: 0.5 bytes a parameter
#   and an 8-bit scale per 64, and 2.1 GB of bf16 embeddings and output layer);
# - generate_answers: the weights and a KV cache of batch 32 x (prompt + 256 reply tokens),
#   about 3 GB at 500-token prompts: about 19 GB in bf16, 9 GB in 4bit;
# - train_adapter (LoRA r 16 on every linear layer, batch 8 x 1024, gradient checkpointing):
#   LoRA's 42M parameters with fp32 gradients and Adam moments 0.7 GB, one layer recomputed
#   about 1 GB, and one hidden state per layer kept: in bf16 16.1 GB of weights + 2.1 GB of
#   bf16 states, about 20 GB, tight on a 24 GB card; in 4bit 7.8 GB of weights (peft upcasts
#   the embeddings, output layer and norms to fp32) + 4.3 GB of fp32 states (the upcast
#   embeddings make the residual stream fp32), about 14 GB, which fits the 24 GB card DART
#   trained on.
# Logits stay small: the loss computes them in chunks of 2**24 values (train.loss).
# CPUs of one model job on a cluster.
CLUSTER_MODEL_THREADS = 8
# Locally, CPU jobs that decode or score with a model (generation, teacher, judge) run this
# many at once, each on its share of the cores. Measured on a 2-core AMD EPYC (SmolLM2-135M,
# fp32, 64 binary prompts, 2026-12-02): one job on both cores 66.5 s, on one core 93.2 s,
# and two one-core jobs side by side 93.2 s each, so 1.4x the work per second. A decode step
# is latency-bound (193 ms on two cores, 232 ms on one): a second core does little for one
# job and much for a second. Training scales with cores (3.6 s a step on two, 6.2 s on one;
# in the default run 186-189 real tokens/s on two cores, 96-99 each for two one-core jobs
# side by side, so about the same work per second), but a job holding every core cannot
# start until both are free, and the one-core jobs around it left a core idle for minutes.
# So training takes its share too: the default run went from 1254 to 1146 s with this and
# the rule priorities below (2026-12-03, AMD EPYC).
LOCAL_MODEL_JOBS_AT_ONCE = 2
# An API job mostly waits on the network; its client threads need little CPU.
CLUSTER_API_THREADS = 2
# DART's split per (benchmark, condition) in data.split.mode: paper.
PAPER_SPLIT = {"train": 800, "val": 100, "test": 100}
# Assumed seconds per API request (a 512-token reply from a hosted model at ~50 tokens/s).
API_REQUEST_S = 10
# Prompts in BOLD's published prompts/ folder (a fine-tune prompt set of format bold with n: null).
BOLD_PROMPTS = 23679

# Reference costs, measured with the embedded 135M model on 2 CPU cores. start_s: load
# and set-up; unit_s: seconds per unit (see each rule's *_request function); rss_mb: peak
# RSS. Where both profiles were measured, the worse per-unit figure is kept.
COSTS = {
    # smoke 34.5 s / 555 MB; default 28 s.
    "convert_embedded_model": {"start_s": 35, "unit_s": 0, "rss_mb": 560},
    # per item x reply token. default test.binary: 96 items x 128 tokens in 60-106 s;
    # smoke m0 val.binary 12 x 48 in 27.4 s, test.mc 18 x 16 in 14.9 s; adapter models
    # load slower (m_joint open 8 x 32 in 32.9 s) and decode slower (m_int test.binary
    # 18 x 48 in 58.8 s, m_int_predlabel test.mc 18 x 16 in 36.3 s). Peak RSS
    # 1056-1376 MB over the 20 smoke jobs.
    "generate_answers": {"start_s": 25, "unit_s": 0.04, "rss_mb": 1380},
    # per training example and epoch at max_length 768: default 96 examples x 2 epochs
    # in 145 s at a 6.9-7.5 GB peak (batch 8 x 768); smoke (3 steps of 4 x 384) m_int
    # 148.8 s, m_int_predlabel 31.8 s at 4338 MB: start-up dominates a short run. Peak
    # memory: TRAIN_RSS_BASE_MB.
    "train_adapter": {"start_s": 150, "unit_s": 0.76, "rss_mb": 7500},
    # per item x request x reply token. default: 96 items x up to 3 requests x 80
    # tokens in 220-517 s; smoke distill 24 x 2 x 64 in 43.1 s, predlabel 24 x 3 x 64
    # in 104.3 s (0.011-0.022 s); 1646 MB. Repair (smoke): 10.3 s, 1102 MB.
    "write_rationales": {"start_s": 10, "unit_s": 0.025, "rss_mb": 1650},
    "write_repair_rationales": {"start_s": 10, "unit_s": 0.025, "rss_mb": 1650},
    # per pair x order x token of the judge's reason. judge_check, 10 pairs: default
    # 2 x 160 tokens in 134 s, smoke 2 x 24 in 103 s: scoring every field by
    # likelihood dominates, hence the start-up share; 1288 MB. 120 pairs (default,
    # drift field only, 2026-12-02): 250 s, 2397 MB, inside the 2x headroom. Smoke
    # judge_pairs 2.7-19.1 s (1061 MB), classify_open_answers (8 answers) 13.4-31.4 s
    # (1479 MB).
    "judge_check": {"start_s": 95, "unit_s": 0.012, "rss_mb": 1300},
    "judge_pairs": {"start_s": 35, "unit_s": 0.012, "rss_mb": 1480},
    "classify_open_answers": {"start_s": 35, "unit_s": 0.012, "rss_mb": 1480},
    # toxicity scoring, see SCORER_TEXT_S: smoke pair_answers 2.8-3.1 s, 310-327 MB.
    "pair_answers": {"rss_mb": 330},
}
# Seconds per scored text on 2 CPU cores: the embedded BiLSTM measured (smoke
# joint_weights: 24 texts in 3.7 s with the load; pair_answers 24 in 2.8-3.1 s); a
# transformer classifier (hf, detoxify; roberta-base size, 512 tokens) assumed, as is a
# tenth of that on a GPU.
SCORER_TEXT_S = {"embedded": 0.15, "hf": 0.5, "detoxify": 0.5}
SCORER_EXTRA_MB = 2048
# Tables, figures and splits: a few seconds each in both reference runs (write_splits
# 0.9 s, score_binary 1.8 s, score_mc 2.3 s, write_open_queries 0.7 s); pandas and
# matplotlib stay well under 1 GB.
LIGHT = {"mem_mb": MIN_MEM_MB, "runtime": MIN_RUNTIME_MIN}


def gpus_declared():
    """Whether this run has GPUs to hand out: declared with --resources gpu=N (on the
    command line or in a profile), or, inside a cluster job, given by SLURM."""
    declared = workflow.global_resources.get("gpu")
    if declared is not None and declared.value:
        return True
    return bool(os.environ.get("SLURM_GPUS") or os.environ.get("SLURM_JOB_GPUS"))


def on_gpu(section):
    """Whether a model described by a config section (student, teacher, judge, scorer)
    runs on a GPU: device cuda, or auto on a machine or profile that declares GPUs."""
    if section.get("backend", "hf") != "hf":
        return False
    device = section.get("device", "auto")
    return device == "cuda" or (device == "auto" and gpus_declared())


def gpu_machine():
    """Whether this machine has an NVIDIA GPU, which device: auto would pick even when no
    gpu resource is declared: two jobs must then not share it, so each keeps every core.
    """
    return shutil.which("nvidia-smi") is not None


def gpu_request(section):
    return 1 if on_gpu(section) else 0


def on_cluster():
    """Planning a cluster run (a non-local executor: no --cores is given, or it stands for
    "unlimited") or running inside one of its jobs."""
    cores = workflow.global_resources["_cores"].value
    return workflow.remote_exec or cores is None or cores == sys.maxsize


def model_threads(section):
    """Threads of a job running the model of a config section. Locally: a CPU job that
    trains, decodes or scores takes 1/LOCAL_MODEL_JOBS_AT_ONCE of the cores; a GPU job and
    an API job take every core, so they run alone. On a cluster: CLUSTER_MODEL_THREADS
    (CLUSTER_API_THREADS for an API back-end)."""
    if not on_cluster():
        if on_gpu(section) or gpu_machine() or section.get("backend", "hf") != "hf":
            return all_cores()
        return max(1, all_cores() // LOCAL_MODEL_JOBS_AT_ONCE)
    if section.get("backend", "hf") != "hf":
        return CLUSTER_API_THREADS
    return CLUSTER_MODEL_THREADS


def params_b(model):
    """A model's size in billions of parameters, read from its name (8B, 135M)."""
    if model.startswith("embedded:"):
        return REFERENCE_PARAMS_B
    found = re.search(r"(\d+(?:\.\d+)?)([bBmM])(?![a-zA-Z])", model)
    if not found:
        return ASSUMED_PARAMS_B
    size = float(found.group(1))
    return size if found.group(2) in "bB" else size / 1000


def model_scale(section):
    """How much slower than the reference a config section's model runs."""
    scale = params_b(section["model"]) / REFERENCE_PARAMS_B
    return scale / GPU_SPEEDUP if on_gpu(section) else scale


def quantized_on_cpu(section):
    """Whether a config section's model loads as 4-bit NF4 on the CPU (its own
    quantization key: student, teacher or judge)."""
    return section.get("quantization", "none") == "4bit" and not on_gpu(section)


def host_bytes_per_param(section):
    """Host memory per parameter of a config section's model (BYTES_PER_PARAM)."""
    if on_gpu(section):  # bf16 or 4bit: the bf16 checkpoint passes through host memory
        return BYTES_PER_PARAM["gpu"]
    return BYTES_PER_PARAM["cpu_4bit" if quantized_on_cpu(section) else "cpu"]


def model_mem_mb(section, rss_mb):
    """Peak memory of a model job: the reference peak, plus the weights of a bigger model."""
    extra_b = max(0.0, params_b(section["model"]) - REFERENCE_PARAMS_B)
    return rss_mb + extra_b * host_bytes_per_param(section) * 1024


def split_size(split):
    """Items in a split at this profile's size (every benchmark has two conditions)."""
    data = config["data"]
    if split == "open_domain":
        n_queries = config["open_domain"]["n_queries"]
        if n_queries is None:
            with open(config["open_domain"]["queries"]) as queries:
                return sum(1 for line in queries if line.strip())
        return n_queries
    per_group = (
        PAPER_SPLIT
        if data["split"]["mode"] == "paper"
        else data["split"]["n_per_group"]
    )
    return 2 * len(data["benchmarks"]) * per_group[split]


def as_request(seconds, mem_mb, attempt):
    """A job's request: headroom over the estimate, doubled again on each retry."""
    factor = HEADROOM * 2 ** (attempt - 1)
    return {
        "runtime": max(MIN_RUNTIME_MIN, math.ceil(factor * seconds / 60)),
        "mem_mb": max(MIN_MEM_MB, 256 * math.ceil(factor * mem_mb / 256)),
    }


def model_request(rule, section, units, attempt, rss_mb=None):
    cost = COSTS[rule]
    start_s, unit_s = cost["start_s"], cost["unit_s"] * model_scale(section)
    if quantized_on_cpu(section):
        start_s += CPU_4BIT_LOAD_S_PER_B * params_b(section["model"])
        # Decoding and scoring run slower; training steps were as fast.
        unit_s *= 1 if rule == "train_adapter" else CPU_4BIT_DECODE_SLOWDOWN
    seconds = start_s + unit_s * units
    mem_mb = model_mem_mb(section, rss_mb or cost["rss_mb"])
    return as_request(seconds, mem_mb, attempt)


def api_request(section, requests, attempt):
    """An API job: requests in flight at once, API_REQUEST_S each, little memory."""
    rounds = math.ceil(requests / section.get("concurrency", 1))
    return as_request(30 + rounds * API_REQUEST_S, 1024, attempt)


def convert_request(wildcards, attempt):
    section = {"model": f"embedded:{wildcards.embedded}", "device": "cpu"}
    return model_request("convert_embedded_model", section, 0, attempt)


def student_section():
    return {**config["student"], "backend": "hf"}


def generate_request(wildcards, attempt):
    items = split_size(wildcards.split)
    tokens = config["generation"]["max_new_tokens"][wildcards.framing]
    return model_request("generate_answers", student_section(), items * tokens, attempt)


def training_examples(model):
    """Upper bound on a model's training examples: every Stage I item, and for a repair
    model also every audited item."""
    examples = split_size("train")
    if model in REPAIR_PARENT:
        examples += split_size(AUDIT_SPLIT)
    return examples


# Peak RSS of training on the reference model grows with the tokens of one step: 7.5 GB
# at batch 8 x 768 (default), 4338 MB at 4 x 384 (smoke); the line through both points
# starts at TRAIN_RSS_BASE_MB.
TRAIN_RSS_BASE_MB = 3300


def training_request(training, section, examples, attempt):
    """A training job of ``training`` settings on the model of ``section``, over at most
    ``examples`` examples per epoch."""
    tokens_per_step = training["batch_size"] * training["max_length"]
    if training["max_steps"] > 0:
        passes = training["max_steps"] * training["batch_size"] * training["grad_accum"]
    else:
        passes = examples * training["epochs"]
    units = passes * training["max_length"] / 768
    rss_mb = TRAIN_RSS_BASE_MB
    # On a GPU the activations live on the card, not in the job's host memory.
    if not on_gpu(section):
        rss_mb += (COSTS["train_adapter"]["rss_mb"] - TRAIN_RSS_BASE_MB) * (
            tokens_per_step / (8 * 768)
        )
    return model_request("train_adapter", section, units, attempt, rss_mb=rss_mb)


def train_request(wildcards, attempt):
    # The control's student may train longer.
    return training_request(
        training_params(wildcards),
        student_section(),
        training_examples(wildcards.model),
        attempt,
    )


def teacher_requests(items, rounds):
    """Requests of a teacher job: one per item and each fix round."""
    return items * (1 + rounds)


def rationales_request(wildcards, attempt):
    teacher = config["teacher"]
    # The predicted-label teacher first answers the question itself.
    asks = config["distill"]["max_fix_rounds"] + (wildcards.source == "predlabel")
    requests = teacher_requests(split_size("train"), asks)
    if teacher["backend"] != "hf":
        return api_request(teacher, requests, attempt)
    units = requests * teacher["max_new_tokens"]
    return model_request("write_rationales", teacher, units, attempt)


def repair_rationales_request(items, attempt):
    """The teacher's Stage III job over ``items`` drift cases at most, with its re-asks."""
    teacher = config["teacher"]
    asks = config["repair"]["max_fix_rounds"] + config["repair"]["max_rescore_rounds"]
    requests = teacher_requests(items, asks)
    if teacher["backend"] != "hf":
        return api_request(teacher, requests, attempt)
    units = requests * teacher["max_new_tokens"]
    return model_request("write_repair_rationales", teacher, units, attempt)


def repair_request(wildcards, attempt):
    return repair_rationales_request(split_size(AUDIT_SPLIT), attempt)


def judge_request(rule, pairs, attempt):
    """A judge job over some pairs, asked in both orders (an API judge may re-ask)."""
    judge = config["audit"]["judge"]
    if judge["backend"] == "none":
        return as_request(30, MIN_MEM_MB, attempt)
    if judge["backend"] != "hf":
        return api_request(judge, 2 * pairs * (1 + judge["max_reasks"]), attempt)
    units = 2 * pairs * judge["max_new_tokens"]
    return model_request(rule, judge, units, attempt)


def judge_check_request(wildcards, attempt):
    # Five kinds of built pairs (audit.check_set.per_kind each), plus any user-supplied ones;
    # those are counted as another 5 x per_kind, a guess made before they are read.
    per_kind = config["audit"]["check_set"]["per_kind"]
    extra = len(config["audit"]["check_set"]["extra"])
    return judge_request("judge_check", 5 * per_kind * (1 + extra), attempt)


def judge_pairs_request(wildcards, attempt):
    # Scope screened judges fewer, but any pair may be screened.
    return judge_request("judge_pairs", split_size(AUDIT_SPLIT), attempt)


def classify_open_request(wildcards, attempt):
    return judge_request("classify_open_answers", split_size("open_domain"), attempt)


def scorer_request(texts, attempt):
    """A toxicity-scoring job over some texts (load included in the per-text cost)."""
    scorer = config["audit"]["scorer"]
    seconds = 5 + texts * SCORER_TEXT_S[scorer["kind"]]
    mem_mb = COSTS["pair_answers"]["rss_mb"]
    if scorer["kind"] != "embedded":
        mem_mb += SCORER_EXTRA_MB
    if on_gpu(scorer_section()):
        seconds /= 10
    return as_request(seconds, mem_mb, attempt)


def scorer_section():
    return {**config["audit"]["scorer"], "backend": "hf"}


def pair_answers_request(wildcards, attempt):
    return scorer_request(2 * split_size(AUDIT_SPLIT), attempt)


def joint_weights_request(wildcards, attempt):
    return scorer_request(split_size("train"), attempt)


@functools.cache  # each job asks twice (memory, runtime), and a user's file may be large
def prompt_set_size(name):
    """Prompts in a fine-tune prompt set at this profile's size (its n, else the whole set;
    a user's file is counted by its lines, a BOLD folder guessed at its published size).
    """
    entry = PROMPT_SETS[name]
    if entry["format"] == "benchmark":
        full = split_size(AUDIT_SPLIT)
    elif entry["format"] == "open":
        full = split_size("open_domain")
    elif Path(entry["path"]).is_file():
        with open(entry["path"], encoding="utf-8", errors="replace") as source:
            full = sum(1 for line in source if line.strip())
    else:
        full = BOLD_PROMPTS
    return min(full, entry["n"] or full)


def finetune_answers_request(wildcards, attempt):
    items = prompt_set_size(wildcards.pset)
    section = finetune_section(wildcards)
    if section["backend"] != "hf":
        return api_request(section, items, attempt)
    tokens = config["generation"]["max_new_tokens"][
        framing_for(PROMPT_SETS[wildcards.pset])
    ]
    return model_request("generate_answers", section, items * tokens, attempt)


def finetune_pairs_request(wildcards, attempt):
    return scorer_request(2 * prompt_set_size(wildcards.pset), attempt)


def finetune_judge_request(wildcards, attempt):
    return judge_request("judge_pairs", prompt_set_size(wildcards.pset), attempt)


def finetune_repair_request(wildcards, attempt):
    repair_on = FINETUNES[wildcards.model].repair_on
    return repair_rationales_request(prompt_set_size(repair_on), attempt)


def finetune_train_request(wildcards, attempt):
    """A fine-tune's repair: Stage I replay plus its repair_on set's cases at most."""
    repair_on = FINETUNES[wildcards.model].repair_on
    examples = split_size("train") + prompt_set_size(repair_on)
    section = {**repair_student(wildcards)["student"], "backend": "hf"}
    return training_request(config["training"], section, examples, attempt)


def request_of(sizer, key):
    """One resource of a sizing function, as Snakemake's resources directive wants it."""
    return lambda wildcards, attempt: sizer(wildcards, attempt)[key]


# Which ready job starts first when the cores are short: Snakemake starts the highest
# priority. The order comes from a list-scheduling simulation of the default profile's
# measured jobs on 2 cores (2026-12-03, one thread per job): the longest chain runs from the
# Stage I rationales through a model's training, its audit-split generations, the audit
# and the repair rationales to the repair training, and is longest in the control arm,
# whose planted drift is always found and so always retrained. Starting that chain first,
# and the evaluation-split and open-domain generations in the gaps it leaves, gave a 50 s
# shorter run than the same tiers without the control arm first and matched giving every
# job its measured longest path to the end. On a cluster, where jobs rarely wait for a
# slot, the order changes little.
PRIORITY = {
    "stage1": 4,  # splits, the embedded model, Stage I rationales: everything waits on them
    "judge_check": 3,  # every audit table reads the judge's check-set result
    "audit_path": 2,  # what a repair round waits on
    "rest": 0,  # evaluation-split and open-domain generations, scores, tables, figures
}
CONTROL_MODELS = {vocab.PLANTED_MODEL, vocab.PLANTED_REPAIR_MODEL}


def tier_priority(tier, model=None, *, control=False):
    """A tier's priority, one more for the control arm's jobs (``control``, or ``model``
    being a control model)."""
    return PRIORITY[tier] + int(control or model in CONTROL_MODELS)


def job_priority(tier, *, control=False):
    """A rule's ``priority:``: its tier's, by the job's model wildcard if it has one."""
    return lambda wildcards: tier_priority(
        tier, getattr(wildcards, "model", None), control=control
    )


def generation_priority(wildcards):
    """The audit split's generations are on the way to a repair round; the rest are not.
    M0's audit replies are paired with every tuned model's, the control's too, so they
    rank with the control arm: in the 2026-12-03 run, tied with M_int's training, they
    started after it and held the control arm's audit back by 100 s."""
    if wildcards.split != AUDIT_SPLIT:
        return tier_priority("rest", wildcards.model)
    is_m0 = wildcards.model == vocab.BASE_MODEL
    return tier_priority("audit_path", wildcards.model, control=is_m0)
