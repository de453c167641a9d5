"""Shared fixtures: a tiny random chat model that loads in milliseconds, fully offline, and
one local smoke-profile run of the whole workflow (the e2e and cluster tests read it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

VOCAB_WORDS = (
    "<pad> <eos> <unk> <user> <assistant> Conclusion: YES NO the a groups are treated same "
    "differently because law fact answer is question (a) (b) (c) yes no so it this"
).split()


def build_tiny_model(folder, seed: int = 0) -> str:
    """Write a 2-layer Llama with a word-level tokenizer and a chat template to ``folder``."""
    from harmdrift.lm.tiny import build_tiny_llama

    return build_tiny_llama(folder, VOCAB_WORDS, seed=seed)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    """The tiny model's tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Torch on one thread in the test process: the tests' models are tiny, so a second thread
    only waits. On an idle 2-core machine that costs little (tests/unit/lm, generate, audit and
    backends: 16.4 s on one thread, 17.8 s on two); on a busy one its spin-waits made single
    tiny-model tests take 3-7 s instead of 0.2-0.3 s. Only where collecting already imported
    torch; the workflow runs the tests start are their own processes, with their own threads."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def validated_default_config() -> dict:
    """config/config.yaml validated against the schema, defaults filled, as the workflow sees
    it, with its relative paths made absolute (the checks look at the disk)."""
    import yaml

    from harmdrift.config import validate_config

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["prompts"] = {k: str(ROOT / v) for k, v in config["prompts"].items()}
    config["data"]["dir"] = str(ROOT / config["data"]["dir"])
    for key in ("queries", "judge_prompt"):
        if key in config.get("open_domain", {}):
            config["open_domain"][key] = str(ROOT / config["open_domain"][key])
    return validate_config(config, ROOT / "config" / "schema.yaml")


def rationale_checks(**changes):
    """Stage I's rationale checks with fixed values (not the schema's defaults, so tests do not
    move when those do), with ``changes``."""
    from dataclasses import replace

    from harmdrift.distill.checks import RationaleConfig

    fixed = RationaleConfig(
        min_sentences=2,
        max_sentences=4,
        max_quote_chars=40,
        max_fix_rounds=2,
        label_source="gold",
        append_missing_conclusion=False,
    )
    return replace(fixed, **changes)


@pytest.fixture(scope="session")
def default_config() -> dict:
    """The default config as the workflow sees it (:func:`validated_default_config`)."""
    return validated_default_config()


# ---------------------------------------------------------------- the unit tier starts no process

UNIT = ROOT / "tests" / "unit"


class ChildProcessInUnitTest(RuntimeError):
    """A unit test tried to start a process."""


class NoChildProcesses:
    """The unit tier's guard: while a test under tests/unit is set up, run or torn down (its
    module and session fixtures included), starting a subprocess, a multiprocessing process or
    ``os.system``/``os.fork`` raises :class:`ChildProcessInUnitTest`, and the phase fails even
    where the code under test swallowed that error. Such a test belongs in
    tests/workflow/<package>/ (a stage against real tools), not in the fast tier."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid, self.attempts = nodeid, []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import multiprocessing.process
        import platform

        # The standard library runs `uname -p` once a process, the first time anything asks for
        # the platform (the openai client does, for its request headers): let it, before a test.
        platform.processor()
        monkeypatch.setattr(subprocess.Popen, "_execute_child", self._refuse("subprocess"))
        monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", self._refuse("multiprocessing"))
        for name in ("system", "fork", "posix_spawn", "posix_spawnp"):
            if hasattr(os, name):
                monkeypatch.setattr(os, name, self._refuse(f"os.{name}"))

    def _refuse(self, what: str):
        def refuse(*args, **kwargs):
            # Popen._execute_child(self, args, ...): name the command; the rest name the call.
            command = f": {args[1]!r}" if what == "subprocess" and len(args) > 1 else ""
            message = (
                f"{self.nodeid} starts a child process ({what}{command}): unit tests start none. "
                "Move it to tests/workflow/<package>/, or put a stand-in in place of the process."
            )
            self.attempts.append(message)
            raise ChildProcessInUnitTest(message)

        return refuse

    def check(self, seen: int = 0) -> None:
        """Raise if a process was attempted since ``seen`` attempts (caught or not)."""
        if len(self.attempts) > seen:
            raise ChildProcessInUnitTest(self.attempts[seen])


CHILD_PROCESS_GUARD = pytest.StashKey[NoChildProcesses]()


@contextmanager
def _guarded(item: pytest.Item):
    if not item.path.is_relative_to(UNIT):
        yield
        return
    guard = item.stash.setdefault(CHILD_PROCESS_GUARD, NoChildProcesses(item.nodeid))
    seen = len(guard.attempts)
    with pytest.MonkeyPatch.context() as monkeypatch:
        guard.install(monkeypatch)
        yield
    guard.check(seen)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with _guarded(item):
        return (yield)


@pytest.fixture
def child_process_guard(request) -> NoChildProcesses:
    """The running unit test's :class:`NoChildProcesses` (for the tier's own tests)."""
    return request.node.stash[CHILD_PROCESS_GUARD]


def pytest_collection_modifyitems(config, items):
    """Cluster tests run only when asked for by marker (-m slurm): a plain run, or one
    narrowed otherwise (-m "not slow"), leaves them out."""
    if "slurm" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="needs a live SLURM cluster: pytest -m slurm tests/cluster (.ci/run)")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


# The workflow as the e2e and cluster tests copy it into a scratch folder.
WORKFLOW_FILES = ["Snakefile", "rules", "scripts", "src", "config", "envs", "resources", "report", "profiles"]
SMOKE = ["--configfile", "config/smoke.yaml"]


def copy_workflow(workdir: Path) -> Path:
    """Copy the workflow (not its results) into ``workdir``; mtimes are kept, so a copy over
    an earlier one leaves its finished jobs alone."""
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, workdir / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
            )
        else:
            shutil.copy2(source, workdir / name)
    return workdir


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The whole workflow on the smoke profile, run locally with --cores 2, once per session.

    With HARMDRIFT_SMOKE_DIR set, the run lives in that folder and a later pytest session
    reuses it (Snakemake then finds nothing to do): .ci/run shares one local run between
    the main suite and the cluster suite, which compares its SLURM run against it.
    """
    shared = os.environ.get("HARMDRIFT_SMOKE_DIR")
    workdir = Path(shared) if shared else tmp_path_factory.mktemp("workflow")
    workdir.mkdir(parents=True, exist_ok=True)
    copy_workflow(workdir)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *SMOKE]
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir
