"""Faults on the finished smoke run: nothing is lost, and nothing half-written is taken as done.

* kill -9 mid-job: a job of the finished run (training, generation, the teacher) is forced to
  run again, and its whole process group (Snakemake and the job) is killed with SIGKILL at a
  seeded point of its own progress (a training step, a generation chunk, the teacher's stored
  replies). Snakemake leaves its lock behind; after ``snakemake --unlock`` the job is planned
  again, its re-run reuses what was checkpointed and writes the bytes of the uninterrupted run
  (timings and cache counters aside).
* Two Snakemakes on one run folder: the second is refused with Snakemake's lock message and
  changes nothing; the first finishes undisturbed.
* Two runs (two run.name values) sharing one cache_dir run at once, without a lock, and agree.

Each test works in its own copy of the shared run (tests/conftest.py: smoke_run), which is
never written to. The converted model (517 MB, read-only for every job here) is hard-linked
into the copy; everything else, Snakemake's metadata and the SQLite caches included, is copied,
since both are rewritten in place.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from conftest import SMOKE, copy_workflow

pytestmark = pytest.mark.slow

RESULTS = "results/smoke"
LOGS = "logs/smoke"
CACHE = ".cache/harmdrift"
# Seeds the point of each kill: random.Random(f"{KILL_SEED}:{fault}").choice(job.kill_at).
KILL_SEED = 20261206
LOCKED = "cannot be locked"  # Snakemake's lock message, in a dry run and in a refused run
SMOKE_CHUNK = 8  # generation.checkpoint_every in config/smoke.yaml
INCOMPLETE = "seem to be incomplete"  # Snakemake's refusal to take marked outputs as done


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def start_snakemake(workdir: Path, printed: Path, *args: str) -> subprocess.Popen:
    """Snakemake in the background, in a process group of its own (so that one killpg reaches
    its jobs too), printing to the file ``printed``."""
    with printed.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args],
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(run: subprocess.Popen) -> None:
    """SIGKILL a background Snakemake's whole process group, if it still runs."""
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()


def output_of(run: subprocess.CompletedProcess) -> str:
    return run.stdout + run.stderr


def planned(text: str) -> set[str]:
    """Rule names in the job table Snakemake prints before running (or in a dry run)."""
    if "Job stats:" not in text:
        return set()
    rules = set()
    for line in text[text.index("Job stats:") :].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        rules.add(parts[0])
    return rules - {"total"}


def copy_run(source: Path, target: Path) -> Path:
    """A private copy of a finished run. The converted model is hard-linked (no job here
    writes it); the rest is copied. Snakemake's own logs and any lock of the source are left
    out, so the copy starts unlocked even while someone else runs Snakemake in the source."""
    models = str(source / RESULTS / "models") + os.sep

    def link_or_copy(src: str, dst: str) -> None:
        if src.startswith(models):
            try:
                os.link(src, dst)
                return
            except OSError:  # another file system
                pass
        shutil.copy2(src, dst)

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {"__pycache__"}
        if Path(folder) == source / ".snakemake":
            skip |= {"locks", "log"}
        return skip & set(names)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy, ignore=ignore)
    return target


def drop_cache(workdir: Path, name: str) -> None:
    """Remove one SQLite cache file (with its WAL and shared-memory files) from a copy."""
    for suffix in ("", "-wal", "-shm"):
        (workdir / CACHE / f"{name}{suffix}").unlink(missing_ok=True)


def processes_in(workdir: Path) -> list[int]:
    """Ids of the live processes whose working folder is ``workdir`` (Linux /proc)."""
    found, workdir = [], workdir.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == workdir:
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def stray_files(folder: Path) -> list[str]:
    """What a killed job may leave behind: atomic-write temp files, generation checkpoints,
    training checkpoints."""
    patterns = (".*.tmp", "*.partial", "checkpoints")
    return sorted(str(p.relative_to(folder)) for pattern in patterns for p in folder.rglob(pattern))


def marked_incomplete(workdir: Path) -> set[str]:
    """The files Snakemake has marked incomplete (a job started on them and did not finish):
    .snakemake/incomplete holds one record per file, named by its path in urlsafe base64 (cut
    into "@"-prefixed folders where a name would be too long)."""
    folder = workdir / ".snakemake" / "incomplete"
    found = set()
    for path in folder.rglob("*"):
        if path.is_file() and path.name != "migration_underway":
            name = "".join(part.lstrip("@") for part in path.relative_to(folder).parts)
            found.add(base64.urlsafe_b64decode(name).decode())
    return found


def log_seconds(line: str) -> float:
    """The timestamp of one of our log lines (``2026-12-06 16:02:18,135 INFO ...``), in seconds."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


# ---------------------------------------------------------------------------------------------
# kill -9 mid-job


@dataclass(frozen=True)
class Job:
    """One job of the smoke run to kill and re-run (paths below results/smoke and logs/smoke)."""

    rule: str
    target: str
    log: str
    # How far the job has got, as it shows it (steps logged, chunks checkpointed, replies
    # cached), and the points, one drawn per test, at which it is killed: mid-work by what it
    # did, not after a delay, which the machine's load would turn into a race.
    progress: Callable[[Path, Job], int]
    kill_at: tuple[int, ...]
    same_bytes: tuple[str, ...]  # outputs that must equal the uninterrupted run's, byte for byte
    # JSON outputs compared without these top-level fields (and why).
    same_json_except: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Cache files removed from the copy first: with them the job would read its whole result
    # from the cache in a second, and the kill would land on nothing.
    drop_caches: tuple[str, ...] = ()
    # A usage file: what this attempt paid for (requests, tokens: cache misses only). Replies
    # the killed attempt already stored come from the cache on the re-run, so only the total
    # of hits and misses must equal the uninterrupted run's.
    usage: str | None = None
    # A generation job's checkpoint (finished chunks), which the re-run resumes from.
    checkpoint: str | None = None


def steps_logged(workdir: Path, job: Job) -> int:
    """Training steps the job has logged (the smoke profile logs every step)."""
    log = workdir / LOGS / job.log
    return len(re.findall(r"harmdrift\.train\.loss: step \d+/", log.read_text())) if log.exists() else 0


def records_checkpointed(workdir: Path, job: Job) -> int:
    """Whole records in the generation job's checkpoint."""
    return len(checkpointed_ids(workdir / RESULTS / job.checkpoint))


def replies_cached(workdir: Path, job: Job) -> int:
    """Replies the job has stored in the response cache (read-only, beside the writer)."""
    path = workdir / CACHE / "llm.sqlite"
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as conn:
            return conn.execute("SELECT count(*) FROM llm_replies").fetchone()[0]
    except sqlite3.Error:  # not created yet, or busy this instant
        return 0


JOBS = {
    # M_int's 3 LoRA steps.
    "train": Job(
        rule="train_adapter",
        target="adapters/m_int/adapter_model.safetensors",
        log="train/m_int.log",
        progress=steps_logged,
        kill_at=(1, 2),  # after step 1 or 2 of 3
        same_bytes=tuple(
            f"adapters/m_int/{name}"
            for name in ("adapter_model.safetensors", "adapter_config.json", "loss.csv", "loss.png")
        ),
        # The training loop's wall time and the throughput computed from it.
        same_json_except={"adapters/m_int/train_config.json": ("wall_s", "train_tokens_per_s")},
    ),
    # M0 on the test split, binary framing: 18 items in chunks of 8 (generation.checkpoint_every
    # in the smoke profile), each finished chunk checkpointed.
    "generate": Job(
        rule="generate_answers",
        target="generate/m0/test.binary.jsonl",
        log="generate/m0/test.binary.log",
        progress=records_checkpointed,
        kill_at=(8, 16),  # after the first or the second chunk of 8 (of 18 items)
        same_bytes=("generate/m0/test.binary.jsonl",),
        drop_caches=("replies.sqlite",),  # the whole-job reply reuse
        checkpoint="generate/m0/test.binary.jsonl.partial",
    ),
    # The teacher's gold-label rationales: 24 requests stored at once, then the fix requests.
    "teacher": Job(
        rule="write_rationales",
        target="rationales/distill.jsonl",
        log="rationales/distill.log",
        progress=replies_cached,
        kill_at=(1,),  # the 24 first replies are stored together: killed in the fix round
        same_bytes=tuple(f"rationales/distill{x}" for x in (".jsonl", ".dropped.jsonl", ".summary.json")),
        same_json_except={
            "rationales/distill.usage.json": (
                "cache_hits",
                "cache_misses",
                "requests",
                "prompt_tokens",
                "completion_tokens",
            )  # fmt: skip
        },
        drop_caches=("llm.sqlite",),  # the teacher's replies
        usage="rationales/distill.usage.json",
    ),
}
FAULTS = list(JOBS)


def kill_mid_work(workdir: Path, job: Job, at: int) -> None:
    """Force ``job`` to run again in ``workdir`` and SIGKILL the whole process group as soon
    as its progress reaches ``at``."""
    log = workdir / LOGS / job.log
    log.unlink()  # the log starts afresh: its lines then tell this attempt's progress
    printed = workdir / "killed-run.out"
    # Targets before --forcerun and --configfile, which take every value after them.
    run = start_snakemake(
        workdir, printed, "--cores", "2", f"{RESULTS}/{job.target}", "--forcerun", job.rule, *SMOKE
    )
    try:
        deadline = time.monotonic() + 600
        while job.progress(workdir, job) < at:
            assert run.poll() is None, printed.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{job.rule} did not reach {at} within 10 minutes"
            time.sleep(0.05)
    finally:
        stop(run)  # SIGKILL to Snakemake and its jobs: no clean-up, no unlock
    deadline = time.monotonic() + 30
    while processes_in(workdir):
        assert time.monotonic() < deadline, f"still running after the kill: {processes_in(workdir)}"
        time.sleep(0.1)
    text = printed.read_text()
    assert "Finished jobid" not in text, f"the job finished before the kill: {text[-2000:]}"


def checkpointed_ids(path: Path) -> set[str]:
    """Ids of the whole records in a generation checkpoint (a kill may cut the last line)."""
    ids = set()
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            ids.add(json.loads(line)["id"])
        except json.JSONDecodeError:
            pass
    return ids


def assert_same_bytes(copy: Path, original: Path, name: str) -> None:
    assert (copy / RESULTS / name).read_bytes() == (original / RESULTS / name).read_bytes(), name


def assert_same_json_except(copy: Path, original: Path, name: str, fields: tuple[str, ...]) -> None:
    ours, theirs = (json.loads((root / RESULTS / name).read_text()) for root in (copy, original))
    for key in fields:
        assert key in ours and key in theirs, (name, key)  # the exception is still needed
        ours.pop(key)
        theirs.pop(key)
    assert ours == theirs, name


@pytest.mark.parametrize("fault", list(FAULTS))
def test_kill_9_mid_job_then_unlock_and_rerun_gives_the_same_bytes(smoke_run, tmp_path, fault):
    jobs = [JOBS[fault]]
    workdir = copy_run(smoke_run, tmp_path / "run")
    for job in jobs:
        for cache in job.drop_caches:
            drop_cache(workdir, cache)
    targets = [f"{RESULTS}/{job.target}" for job in jobs]
    rules = {job.rule for job in jobs}
    at = random.Random(f"{KILL_SEED}:{fault}").choice(jobs[0].kill_at)
    assert marked_incomplete(workdir) == set()
    kill_mid_work(workdir, jobs[0], at)
    # Snakemake marked the jobs' outputs incomplete when they started; nobody unmarked them.
    assert set(targets) <= marked_incomplete(workdir)
    restored = {
        job.rule: checkpointed_ids(workdir / RESULTS / job.checkpoint) for job in jobs if job.checkpoint
    }
    outputs = [x for job in jobs for x in (*job.same_bytes, *job.same_json_except)]
    left = [x for x in outputs if (workdir / RESULTS / x).exists()]
    counts = {rule: len(ids) for rule, ids in restored.items()}
    stray = stray_files(workdir / RESULTS)
    print(f"{fault}: killed at progress {at}; outputs left: {left}; stray: {stray}; {counts}")

    # The next plain run sees the lock the killed one left. A dry run reports it and goes on;
    # a real run is refused with Snakemake's advice to --unlock (--rerun-incomplete: past the
    # check of incomplete files, which comes first, see below).
    dry = snakemake(workdir, "-n", *SMOKE)
    if INCOMPLETE in output_of(dry):
        dry = snakemake(workdir, "-n", "--rerun-incomplete", *SMOKE)
    assert LOCKED in output_of(dry), output_of(dry)[-3000:]
    refused = snakemake(workdir, "--cores", "2", *targets, "--rerun-incomplete", *SMOKE)
    assert refused.returncode != 0 and "--unlock" in output_of(refused), output_of(refused)[-3000:]

    unlock = snakemake(workdir, "--unlock")  # exactly as Snakemake advises
    assert unlock.returncode == 0, output_of(unlock)[-3000:]

    # Half-written outputs are not taken as done: the jobs are planned again (outputs missing),
    # or, where a job had written every output, Snakemake refuses to use them until told to
    # re-run incomplete jobs (they are still marked incomplete in .snakemake/incomplete).
    dry = snakemake(workdir, "-n", *targets, *SMOKE)
    incomplete = INCOMPLETE in output_of(dry)
    assert incomplete or rules <= planned(output_of(dry)), output_of(dry)[-3000:]
    rerun = snakemake(workdir, "--cores", "2", *targets, *(["--rerun-incomplete"] * incomplete), *SMOKE)
    assert rerun.returncode == 0, output_of(rerun)[-4000:]
    assert rules <= planned(output_of(rerun))
    assert LOCKED not in output_of(rerun)
    assert stray_files(workdir / RESULTS) == []
    assert marked_incomplete(workdir) == set()
    done = snakemake(workdir, "-n", *targets, *SMOKE)
    assert "Nothing to be done" in output_of(done), output_of(done)[-3000:]

    for job in jobs:
        for output in job.same_bytes:
            assert_same_bytes(workdir, smoke_run, output)
        for output, fields in job.same_json_except.items():
            assert_same_json_except(workdir, smoke_run, output, fields)
        if job.usage:
            ours, theirs = (
                json.loads((root / RESULTS / job.usage).read_text()) for root in (workdir, smoke_run)
            )
            assert ours["cache_hits"] + ours["cache_misses"] == theirs["cache_hits"] + theirs["cache_misses"]
        if job.checkpoint:
            # Finished chunks were reused, not decoded again (and the bytes above still match).
            # A kill may cut a chunk's lines short; that chunk is decoded again, whole.
            whole_chunks = len(restored[job.rule]) - len(restored[job.rule]) % SMOKE_CHUNK
            log = (workdir / LOGS / job.log).read_text()
            assert f"'reused_from_checkpoint': {whole_chunks}" in log, log[-2000:]


# ---------------------------------------------------------------------------------------------
# Two Snakemakes on one run folder


def snapshot(workdir: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file a run may write: outputs, logs, benchmarks, caches and
    Snakemake's records of what is done, incomplete and locked."""
    roots = ["results", "logs", "benchmarks", ".cache"]
    roots += [f".snakemake/{x}" for x in ("metadata", "incomplete", "locks")]
    files = {}
    for root in roots:
        for path in (workdir / root).rglob("*"):
            if path.is_file():
                stat = path.stat()
                files[str(path.relative_to(workdir))] = (stat.st_size, stat.st_mtime_ns)
    return files


def test_a_second_snakemake_on_a_running_folder_is_refused_and_changes_nothing(smoke_run, tmp_path):
    workdir = copy_run(smoke_run, tmp_path / "run")
    target = f"{RESULTS}/data/split_summary.csv"
    # The data splits are forced to run again; their script (in this copy only) first waits
    # for a go-ahead, so the first Snakemake holds its lock for as long as the test needs.
    script = workdir / "scripts" / "write_splits.py"
    started, go = workdir / "job-started", workdir / "job-go"
    script.write_text(
        "import pathlib, time\n"
        f"pathlib.Path({str(started)!r}).touch()\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.1)\n"
        f"exec(compile({script.read_text()!r}, {str(script)!r}, 'exec'))\n"
    )
    printed = tmp_path / "first.out"
    first = start_snakemake(workdir, printed, "--cores", "1", target, "--forcerun", "write_splits", *SMOKE)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert first.poll() is None, printed.read_text()[-3000:]
            assert time.monotonic() < deadline, "the first run's job did not start"
            time.sleep(0.1)
        before = snapshot(workdir)
        # The whole workflow (which reads the splits) and the very same target.
        for args in [SMOKE, [target, *SMOKE]]:
            second = snakemake(workdir, "--cores", "1", *args)
            assert second.returncode != 0
            assert LOCKED in output_of(second) and "--unlock" in output_of(second), output_of(second)[-3000:]
            assert "Finished jobid" not in output_of(second)
        assert snapshot(workdir) == before
        assert first.poll() is None  # the first run goes on undisturbed ...
        go.touch()
        first.wait(timeout=300)
    finally:
        stop(first)
    assert first.returncode == 0, printed.read_text()[-3000:]  # ... and finishes
    for name in ["data/split_summary.csv", "data/splits/test.jsonl", "data/splits/provenance.json"]:
        assert_same_bytes(workdir, smoke_run, name)


# ---------------------------------------------------------------------------------------------
# Two runs, one cache


def test_two_runs_sharing_one_cache_dir_run_at_once(smoke_run, tmp_path):
    """Runs fault_a and fault_b: the data splits and M0's answers on the audit split, from an
    empty shared cache, so both decode and both store the same job's replies at once."""
    workdir = copy_workflow(tmp_path)
    answers = "generate/m0/val.binary.jsonl"
    runs = {}
    for name in ("fault_a", "fault_b"):
        (workdir / f"{name}.yaml").write_text(f"run:\n  name: {name}\ncache_dir: shared-cache\n")
        targets = [f"results/{name}/data/split_summary.csv", f"results/{name}/{answers}"]
        # Both overlays after one --configfile (SMOKE ends with the flag); one core each.
        runs[name] = start_snakemake(
            workdir, tmp_path / f"{name}.out", "--cores", "1", *targets, *SMOKE, f"{name}.yaml"
        )
    try:
        for run in runs.values():
            run.wait(timeout=600)
    finally:
        for run in runs.values():
            stop(run)
    printed = {name: (tmp_path / f"{name}.out").read_text() for name in runs}
    for name, run in runs.items():
        assert run.returncode == 0, printed[name][-4000:]
        assert LOCKED not in printed[name]

    # The two generation jobs overlapped in time (their log lines say when they ran).
    spans = {}
    for name in runs:
        lines = (workdir / f"logs/{name}/generate/m0/val.binary.log").read_text().splitlines()
        stamped = [log_seconds(x) for x in lines if x[:2] == "20"]
        spans[name] = (stamped[0], stamped[-1])
    (a0, a1), (b0, b1) = spans.values()
    assert max(a0, b0) < min(a1, b1), spans

    a, b = (workdir / "results" / name for name in runs)
    for output in ["data/split_summary.csv", "data/splits/val.jsonl", answers]:
        assert (a / output).read_bytes() == (b / output).read_bytes(), output
        # Same config, so also what the shared smoke run wrote.
        assert (a / output).read_bytes() == (smoke_run / RESULTS / output).read_bytes(), output
    # Both stored the one job's replies under the same key: one entry in the shared cache.
    with sqlite3.connect(workdir / "shared-cache" / "replies.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 1
