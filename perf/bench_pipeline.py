"""Benchmark: one profile of the whole workflow, from scratch, with every hot path against its limit.

Copies the workflow (Snakefile, rules, config, scripts, src, resources, envs, report, profiles; never
results/, .snakemake or a cache) into a scratch folder, runs ``snakemake --cores N`` there with
a fresh cache_dir inside it, then prints:

- a per-rule table (jobs, wall total and max, peak RSS, share of all job time) from
  ``benchmarks/**/*.tsv``; rules without a benchmark directive get their wall time from the
  Snakemake log (1 s resolution) and are marked ``log``; rules with neither are named unmeasured;
- ``whole-run wall: <seconds> s``, measured around the snakemake call;
- the critical path: the longest chain of jobs through the executed DAG (edges: a job's input
  is another job's output, read from the log), weighted by each job's wall time;
- the fp32 matmul rate (and bf16 where the hardware has it) measured right after the run on
  the same cores (2048^3 products and decode-shaped 32x576x1536 ones, best of several), on all
  the cores and on as many threads as each model job had (one, for a CPU job sharing the
  machine), the CPU model and its bf16 flags;
- generation and training as a fraction of that limit. Generation counts 2N FLOP per token over
  prompt + new tokens (N: all parameters, tied embeddings once), over the engine's decode time
  in each job's log. LoRA training counts 4N FLOP per real token for the frozen base (forward
  2N, input gradients 2N; the frozen weights get no weight gradients) plus 6 per trainable
  parameter, over the training loop's wall time. The limit is the large-product rate of the
  dtype the job ran in, on the job's threads.

    python perf/bench_pipeline.py                                  # default profile, all cores
    python perf/bench_pipeline.py --configfile config/smoke.yaml --target results/smoke/data/split_summary.csv
    python perf/bench_pipeline.py --analyze /path/to/finished/run  # report on a run, run nothing

Nothing is asserted (machines are noisy); ``--json`` also writes the figures to a file.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ("Snakefile", "rules", "config", "scripts", "src", "resources", "envs", "report", "profiles")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake", ".cache", "results", "benchmarks")

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
FIELD = re.compile(r"^\s+(input|output|log|jobid|benchmark|wildcards|threads): (.*)$")
DONE = re.compile(r"^Finished job(?:id:)? (\d+)")
ELAPSED = re.compile(r"^Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
GEN_LOG = re.compile(r": (\d+) items, (\d+) new tokens in ([\d.]+)s")
PROMPT_LOG = re.compile(r"(\d+) prompt tokens")


@dataclass
class Job:
    """One executed job as the Snakemake log describes it, plus its benchmark row if any."""

    jobid: int
    rule: str
    start: float | None = None
    end: float | None = None
    wildcards: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    benchmark: str | None = None
    bench: dict | None = None
    threads: int = 1  # Snakemake logs a job's threads only when there are more than one

    @property
    def wall(self) -> float | None:
        """Seconds: the benchmark's (exact) when there is one, else the log's (1 s steps)."""
        if self.bench and self.bench.get("s") is not None:
            return self.bench["s"]
        if self.start is not None and self.end is not None:
            return self.end - self.start
        return None

    @property
    def label(self) -> str:
        return f"{self.rule}[{self.wildcards}]" if self.wildcards else self.rule


def parse_benchmark(text: str) -> dict | None:
    """The first row of a Snakemake benchmark TSV as {column: float or None}."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    row = {}
    for key, value in zip(lines[0].split("\t"), lines[1].split("\t"), strict=False):
        try:
            row[key] = float(value)
        except ValueError:
            row[key] = None if key != "h:m:s" else value
    return row


def parse_log(text: str) -> tuple[list[Job], float | None]:
    """Jobs (start/end stamps, files, wildcards) and the reported elapsed time of a Snakemake log."""
    jobs: dict[int, Job] = {}
    stamp = elapsed = None
    current: Job | None = None
    for line in text.splitlines():
        if m := STAMP.match(line):
            stamp = time.mktime(time.strptime(m.group(1), "%a %b %d %H:%M:%S %Y"))
            current = None
        elif m := RULE.match(line):
            current = Job(jobid=-1, rule=m.group(1), start=stamp)
        elif current is not None and (m := FIELD.match(line)):
            key, value = m.groups()
            if key == "jobid":
                current.jobid = int(value)
                jobs[current.jobid] = current
            elif key == "benchmark":
                current.benchmark = value.strip()
            elif key == "wildcards":
                current.wildcards = value.strip()
            elif key == "threads":
                current.threads = int(value)
            else:
                lists = {"input": current.inputs, "output": current.outputs, "log": current.log}
                lists[key].extend(p for p in value.split(", ") if p)
        elif (m := DONE.match(line)) and int(m.group(1)) in jobs:
            jobs[int(m.group(1))].end = stamp
        elif m := ELAPSED.match(line):
            elapsed = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return sorted(jobs.values(), key=lambda j: (j.start or 0, j.jobid)), elapsed


def rule_table(jobs: list[Job]) -> list[dict]:
    """Per rule: jobs, wall total/max, peak RSS (MB), share of all job time, where it came from."""
    groups: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        groups[job.rule].append(job)
    total = sum(j.wall or 0.0 for j in jobs) or 1.0
    rows = []
    for rule, members in groups.items():
        walls = [j.wall for j in members if j.wall is not None]
        rss = [j.bench["max_rss"] for j in members if j.bench and j.bench.get("max_rss") is not None]
        source = "bench" if all(j.bench for j in members) else "log" if walls else "unmeasured"
        rows.append({"rule": rule, "jobs": len(members), "wall_total_s": round(sum(walls), 2),
                     "wall_max_s": round(max(walls), 2) if walls else None,
                     "peak_rss_mb": round(max(rss), 1) if rss else None,
                     "share": round(sum(walls) / total, 4), "source": source})  # fmt: skip
    return sorted(rows, key=lambda r: -r["wall_total_s"])


def critical_path(jobs: list[Job]) -> tuple[float, list[Job]]:
    """The chain of dependent jobs with the largest summed wall time, first job first."""
    producer = {out.rstrip("/"): job for job in jobs for out in job.outputs}

    def deps(job: Job) -> set[int]:
        found = set()
        for path in job.inputs:
            path = path.rstrip("/")
            while path:  # a file inside a directory output depends on that output's job
                if path in producer and producer[path] is not job:
                    found.add(producer[path].jobid)
                    break
                path = path.rpartition("/")[0]
        return found

    by_id = {j.jobid: j for j in jobs}
    best: dict[int, tuple[float, list[Job]]] = {}

    def longest(job: Job) -> tuple[float, list[Job]]:
        if job.jobid not in best:
            best[job.jobid] = (0.0, [])  # guards against a cycle in a damaged log
            chains = [longest(by_id[d]) for d in deps(job)]
            head = max(chains, key=lambda c: c[0], default=(0.0, []))
            best[job.jobid] = (head[0] + (job.wall or 0.0), [*head[1], job])
        return best[job.jobid]

    return max((longest(j) for j in jobs), key=lambda c: c[0], default=(0.0, []))


def param_count(folder: str | Path) -> int | None:
    """Parameters of a saved model from its safetensors headers (tied weights are stored once)."""
    total, files = 0, sorted(Path(folder).glob("*.safetensors"))
    for path in files:
        with path.open("rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        total += sum(math.prod(meta["shape"]) for name, meta in header.items() if name != "__metadata__")
    return total if files else None


def peak_rss_mb() -> int:
    """This process's peak RSS so far, in MB (ru_maxrss is in kilobytes on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_isolated(fn, *args):
    """``fn(*args)`` in a fresh spawned process, so its peak RSS (loading included) is its own
    and no earlier arm's memory counts in it."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(fn, args)
        # Let the worker exit on its own: a terminated one leaves its semaphores to the tracker.
        pool.close()
        pool.join()
    return result


def ratios(numerator: dict, denominator: dict, keys) -> dict:
    """numerator[key] / denominator[key] for each key where both are non-zero, to 3 places."""
    return {k: round(numerator[k] / denominator[k], 3) for k in keys if numerator[k] and denominator[k]}


def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    found = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    flags = set(found.group(1).split()) if found else set()
    named = {flag: flag in flags for flag in ("avx512f", "avx512_bf16", "amx_bf16")}
    return {"model": name.group(1).strip() if name else "unknown", **named, "logical_cpus": os.cpu_count()}


def has_fast_bf16(device: str = "cpu") -> bool:
    """Whether bf16 matmuls have hardware here: a GPU that supports bf16 (the test `dtype: auto`
    makes, harmdrift.core.runtime.pick_dtype), or a CPU with AVX-512-BF16 or AMX."""
    if device == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    cpu = cpu_info()
    return cpu["avx512_bf16"] or cpu["amx_bf16"]


def matmul_rates(
    threads: int | None = None, device: str = "cpu", repeats: int = 5, budget: float = 2e9
) -> dict:
    """Best-of-``repeats`` GFLOP/s of a@b, large (2048^3) and decode-shaped, in fp32 and, where the
    hardware has it, bf16. Without it `dtype: auto` runs fp32, and an emulated bf16 product
    (0.3 GFLOP/s on an AVX2 AMD EPYC) took minutes to time for a figure no job is held to."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rates = {}
    for dtype in ("float32", "bfloat16") if has_fast_bf16(device) else ("float32",):
        for shape, (m, k, n) in {"large": (2048, 2048, 2048), "decode": (32, 576, 1536)}.items():
            a = torch.randn(m, k, dtype=getattr(torch, dtype), device=device)
            b = torch.randn(k, n, dtype=getattr(torch, dtype), device=device)
            flop, inner, best = 2.0 * m * k * n, max(1, int(budget // (2.0 * m * k * n))), float("inf")
            _ = a @ b
            for _ in range(repeats):
                sync()
                started = time.perf_counter()
                for _ in range(inner):
                    _ = a @ b
                sync()
                best = min(best, (time.perf_counter() - started) / inner)
            rates[f"{dtype}_{shape}"] = round(flop / best / 1e9, 1)
    return rates


def against_limit(row: dict, flop: float, seconds: float, rates: dict) -> dict:
    """``row`` plus achieved GFLOP/s and its fraction of the large-product rate in ``row['dtype']``
    on ``row['threads']`` threads (``rates``: thread count -> matmul_rates)."""
    limit = rates.get(row["threads"], {}).get(f"{row['dtype']}_large")
    achieved = flop / seconds / 1e9 if seconds and flop else None
    fraction = round(achieved / limit, 3) if achieved and limit else None
    return {**row, "gflop_per_s": achieved and round(achieved, 1), "limit_gflop_per_s": limit,
            "fraction_of_limit": fraction}  # fmt: skip


def _prompt_ids(records: list[dict], model_dir: Path | None, cache: dict) -> list[list[int]] | None:
    """Each record's prompt as the engine tokenises it (chat template rendered, then the text as
    is), or None when the records carry no prompt or the model folder has no tokenizer."""
    if model_dir is None or not records or not (model_dir / "tokenizer_config.json").exists():
        return None
    if not all("prompt" in r for r in records):
        return None
    if model_dir not in cache:
        from transformers import AutoTokenizer

        cache[model_dir] = AutoTokenizer.from_pretrained(str(model_dir))
    tok = cache[model_dir]
    texts = [
        tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in records
    ]
    return tok(texts, add_special_tokens=False)["input_ids"]


def _prompt_tokens(records: list[dict], log_text: str, ids: list[list[int]] | None) -> int:
    """Prompt tokens of a generation job: from its log or records when they say, else counted."""
    if found := PROMPT_LOG.search(log_text):
        return int(found.group(1))
    if all("n_prompt_tokens" in r for r in records):
        return sum(r["n_prompt_tokens"] for r in records)
    return sum(map(len, ids)) if ids else 0


def shared_prefix_tokens(ids: list[list[int]] | None) -> int:
    """Tokens every prompt of a job starts with (chat header and the template's opening).

    That prefix is what prefix-KV reuse could compute once instead of once per prompt, so
    ``shared x prompts / (prompt + new tokens)`` bounds the share of generation FLOPs it saves.
    """
    return len(os.path.commonprefix(ids)) if ids else 0


def generation_paths(run: Path, jobs: list[Job], rates: dict) -> list[dict]:
    """Per split.framing: tokens, decode seconds, tokens/s and fraction of the matmul limit."""
    groups: dict[str, dict] = {}
    tokenizers: dict = {}
    for job in jobs:
        if job.rule != "generate_answers" or not job.outputs or not (run / job.outputs[0]).exists():
            continue
        records = [json.loads(line) for line in (run / job.outputs[0]).read_text().splitlines() if line]
        model_dir = next((run / p for p in job.inputs if (run / p / "config.json").exists()), None)
        log_path = run / job.log[0] if job.log else None
        log_text = log_path.read_text() if log_path and log_path.exists() else ""
        decoded = GEN_LOG.search(log_text)
        if decoded is None:  # decoded nothing: resumed, or an identical job's replies reused
            continue
        ids = _prompt_ids(records, model_dir, tokenizers)  # tokenised once, for both counts
        prompt = _prompt_tokens(records, log_text, ids)
        new = sum(r["n_new_tokens"] for r in records)
        n = param_count(model_dir) if model_dir else 0
        g = groups.setdefault(
            (f"generate {Path(job.outputs[0]).name.removesuffix('.jsonl')}", job.threads), defaultdict(float)
        )
        g["jobs"] += 1
        g["items"] += len(records)
        g["prompt_tokens"] += prompt
        g["shared_prefix_tokens"] += shared_prefix_tokens(ids) * len(records)
        g["new_tokens"] += new
        g["seconds"] += float(decoded.group(3))
        g["flop"] += 2.0 * n * (prompt + new)
        g["dtype"] = (records[0].get("decoding") or {}).get("dtype", "float32") if records else "float32"
    out = []
    for (name, threads), g in sorted(groups.items()):
        flop, seconds = g.pop("flop"), g["seconds"]
        row = {"path": name, "threads": threads,
               **{k: int(v) if k not in ("dtype", "seconds") else v for k, v in g.items()}}  # fmt: skip
        row["tokens_per_s"] = round((g["prompt_tokens"] + g["new_tokens"]) / seconds, 1) if seconds else None
        total = g["prompt_tokens"] + g["new_tokens"]
        row["prefix_kv_bound"] = round(g["shared_prefix_tokens"] / total, 3) if total else None
        out.append(against_limit({**row, "seconds": round(seconds, 1)}, flop, seconds, rates))
    return out


def training_paths(run: Path, jobs: list[Job], rates: dict) -> list[dict]:
    """Per trained adapter: real tokens/s, FLOP/s by 4N_base + 6N_lora per token, fraction of limit."""
    out = []
    for job in jobs:
        path = next((run / o for o in job.outputs if o.endswith("train_config.json")), None)
        if job.rule != "train_adapter" or path is None or not path.exists():
            continue
        meta, name = json.loads(path.read_text()), f"train {job.wildcards.removeprefix('model=')}"
        if meta.get("skipped") or not meta.get("train_tokens_per_s"):
            out.append({"path": name, "skipped": meta.get("skipped", "no throughput recorded")})
            continue
        trainable, total = meta.get("trainable_params", 0), meta.get("total_params", 0)
        row = {"path": name, "threads": job.threads,
               "dtype": meta.get("config", {}).get("dtype_resolved", "float32"),
               "real_tokens": meta.get("train_real_tokens"), "seconds": round(meta.get("wall_s", 0.0), 1),
               "tokens_per_s": round(meta["train_tokens_per_s"], 1),
               "peak_rss_mb": (job.bench or {}).get("max_rss")}  # fmt: skip
        flop = meta.get("train_real_tokens", 0) * (4.0 * (total - trainable) + 6.0 * trainable)
        out.append(against_limit(row, flop, meta.get("wall_s", 0.0), rates))
    return out


def attach_benchmarks(run: Path, jobs: list[Job]) -> list[str]:
    """Read each job's benchmark file; return benchmark files no logged job claims."""
    claimed = set()
    for job in jobs:
        if job.benchmark and (run / job.benchmark).exists():
            job.bench = parse_benchmark((run / job.benchmark).read_text())
            claimed.add(job.benchmark)
    every = {str(p.relative_to(run)) for p in run.glob("benchmarks/**/*.tsv")}
    return sorted(every - claimed)


def fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def report(run: Path, wall: float | None, cores: int, rc: int | None, repeats: int) -> dict:
    """Print the tables and return the same figures as a dict."""
    logs = sorted((run / ".snakemake" / "log").glob("*.snakemake.log"))
    jobs, elapsed = parse_log(logs[-1].read_text()) if logs else ([], None)
    stray, rows = attach_benchmarks(run, jobs), rule_table(jobs)
    print(f"\n{'rule':<28}{'jobs':>5}{'wall s':>9}{'max s':>8}{'peak RSS MB':>12}{'share':>7}  source")
    for r in rows:
        print(f"{r['rule']:<28}{r['jobs']:>5}{fmt(r['wall_total_s']):>9}{fmt(r['wall_max_s']):>8}"
              f"{fmt(r['peak_rss_mb'], '.0f'):>12}{r['share']:>7.1%}  {r['source']}")  # fmt: skip
    print(f"{'total job time':<33}{sum(r['wall_total_s'] for r in rows):>9.1f}")
    unmeasured = [r["rule"] for r in rows if r["source"] == "unmeasured"]
    print(
        f"unmeasured rules: {', '.join(unmeasured) or 'none'}"
        + (f"; unclaimed benchmarks: {stray}" if stray else "")
    )
    if wall is None:  # --analyze: what Snakemake reported, else the span of the logged jobs
        stamps = [t for j in jobs for t in (j.start, j.end) if t is not None]
        wall = elapsed if elapsed is not None else (max(stamps) - min(stamps) if stamps else None)
    print(f"whole-run wall: {fmt(wall)} s")
    length, chain = critical_path(jobs)
    print(f"critical path: {length:.1f} s over {len(chain)} jobs")
    for job in chain:
        print(f"  {fmt(job.wall):>8} s  {job.label}")
    # Each job is held to the rate of as many threads as it had (a one-core decode job next
    # to another is measured against one core, not the machine).
    used = sorted({cores, *(j.threads for j in jobs if j.rule in ("generate_answers", "train_adapter"))})
    rates, cpu = {t: matmul_rates(t, repeats=repeats) for t in used}, cpu_info()
    yes = {True: "yes", False: "no"}
    print(f"\nCPU: {cpu['model']} ({cores} threads); AVX-512-BF16: {yes[cpu['avx512_bf16']]}, "
          f"AMX-BF16: {yes[cpu['amx_bf16']]}")  # fmt: skip
    for threads, by_kind in rates.items():
        print(f"matmul GFLOP/s, {threads} thread(s): " + ", ".join(f"{k} {v}" for k, v in by_kind.items()))
    hot = generation_paths(run, jobs, rates) + training_paths(run, jobs, rates)
    print(f"\n{'hot path':<34}{'threads':>8}{'dtype':>9}{'tokens/s':>10}{'GFLOP/s':>9}{'limit':>8}"
          f"{'of limit':>10}{'prefix-KV':>11}")  # fmt: skip
    if not hot:
        print("(no generate_answers or train_adapter job ran)")
    for h in hot:
        if "skipped" in h:
            print(f"{h['path']:<34}  skipped: {h['skipped']}")
        else:
            limit, share = fmt(h["limit_gflop_per_s"], ".0f"), fmt(h["fraction_of_limit"], ".1%")
            bound = fmt(h["prefix_kv_bound"], ".1%") if "prefix_kv_bound" in h else ""
            print(f"{h['path']:<34}{h['threads']:>8}{h['dtype']:>9}{fmt(h['tokens_per_s']):>10}"
                  f"{fmt(h['gflop_per_s']):>9}{limit:>8}{share:>10}{bound:>11}")  # fmt: skip
    print(
        "(generation: 2N FLOP per prompt+new token over decode time; training: 4N_base + 6N_lora per token;\n"
        " prefix-KV: the prompts' shared leading tokens as a share of all tokens, the most that\n"
        " reusing their KV could save of generation FLOPs)"
    )
    path = {"seconds": round(length, 1), "jobs": [{"job": j.label, "seconds": j.wall} for j in chain]}
    return {"run_dir": str(run), "cores": cores, "snakemake_rc": rc, "whole_run_wall_s": wall, "rules": rows,
            "unmeasured_rules": unmeasured, "unclaimed_benchmarks": stray, "critical_path": path, "cpu": cpu,
            "matmul_gflop_per_s": {str(t): r for t, r in rates.items()}, "hot_paths": hot}  # fmt: skip


def copy_workflow(dest: Path) -> None:
    for name in WORKFLOW:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=SKIP)
        elif (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)


def in_scratch(path: str, scratch: Path) -> str:
    """A config file given from here, as the scratch run sees it (its copy when inside the repo)."""
    full = Path(path).resolve()
    return str(scratch / full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(full)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configfile", nargs="+", default=[], help="overlays on config/config.yaml")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--target", nargs="+", default=[], help="build only these files (quick checks)")
    parser.add_argument("--keep", type=Path, help="run in this (new or empty) folder and keep it")
    parser.add_argument("--analyze", type=Path, help="report on a finished run folder; run nothing")
    parser.add_argument("--repeats", type=int, default=5, help="matmul timings per shape (best of)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    rc = wall = None
    run = (args.analyze or args.keep or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))).resolve()
    if not args.analyze:
        if args.keep and args.keep.exists() and any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep}: the folder is not empty; the run must start from scratch")
        run.mkdir(parents=True, exist_ok=True)
        copy_workflow(run)
        cache = run / ".cache" / "harmdrift"  # fresh: no teacher or judge reply is reused
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            str(args.cores),
            "--config",
            f"cache_dir={cache}",
        ]
        if args.configfile:  # one flag: a second --configfile would replace the first list
            cmd += ["--configfile", *(in_scratch(c, run) for c in args.configfile)]
        cmd += ["--", *args.target] if args.target else []
        print(f"running in {run}: {' '.join(cmd)}\n(snakemake output: {run / 'snakemake.out'})", flush=True)
        with (run / "snakemake.out").open("w") as sink:
            started = time.perf_counter()
            rc = subprocess.call(cmd, cwd=run, stdout=sink, stderr=subprocess.STDOUT)
            wall = time.perf_counter() - started
        if rc:
            tail = (run / "snakemake.out").read_text().splitlines()[-20:]
            print(f"snakemake failed (exit {rc}); its last lines:\n" + "\n".join(tail))
    figures = report(run, wall, args.cores, rc, args.repeats)
    figures["profile"] = ["config/config.yaml", *args.configfile]
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if rc and not args.keep:
        print(f"kept the failed run in {run} for a look")
    elif not (args.keep or args.analyze):
        shutil.rmtree(run, ignore_errors=True)
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
