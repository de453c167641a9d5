"""The pure parts of perf/bench_pipeline.py: benchmark files, the Snakemake log, the per-rule
table, the critical path, the hot-path arithmetic (nothing here runs Snakemake) and which
matmul rates are timed (tiny products)."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "perf" / "bench_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"

LOG = """\
Building DAG of jobs...
[Tue Dec  1 22:05:36 2026]
localrule write_splits:
    input: resources/d/D1.jsonl
    output: results/data/splits/train.jsonl, results/data/split_summary.csv
    log: logs/data/write_splits.log
    jobid: 1
    reason: Missing output files: results/data/split_summary.csv
    resources: tmpdir=/tmp
[Tue Dec  1 22:05:36 2026]
rule convert_embedded_model:
    output: results/models/tiny
    jobid: 4
    benchmark: benchmarks/models/convert_tiny.tsv
    wildcards: embedded=tiny
[Tue Dec  1 22:05:40 2026]
Finished jobid: 1 (Rule: write_splits)
[Tue Dec  1 22:06:00 2026]
Finished job 4.
[Tue Dec  1 22:06:00 2026]
rule train_adapter:
    input: results/data/splits/train.jsonl, results/models/tiny/config.json
    output: results/adapters/m_int/train_config.json
    log: logs/train/m_int.log
    jobid: 7
    benchmark: benchmarks/train/m_int.tsv
    wildcards: model=m_int
    threads: 2
[Tue Dec  1 22:06:30 2026]
Finished jobid: 7 (Rule: train_adapter)
[Tue Dec  1 22:06:30 2026]
rule score_binary:
    input: results/adapters/m_int/train_config.json
    output: results/tables/scores.csv
    jobid: 9
Elapsed time: 0:01:02.500000
"""


def test_parse_benchmark_reads_the_first_row(bench):
    row = bench.parse_benchmark(HEADER + "12.5\t0:00:12\t812.3\t900\tNA\t-\t0.1\t0.2\t95.0\t11.9\n")
    assert row["s"] == 12.5 and row["max_rss"] == 812.3 and row["h:m:s"] == "0:00:12"
    assert row["max_uss"] is None and row["max_pss"] is None
    assert bench.parse_benchmark(HEADER) is None


def test_parse_log_finds_jobs_files_stamps_and_elapsed(bench):
    jobs, elapsed = bench.parse_log(LOG)
    assert [j.jobid for j in jobs] == [1, 4, 7, 9]
    by_id = {j.jobid: j for j in jobs}
    assert by_id[1].rule == "write_splits"
    assert by_id[1].outputs == ["results/data/splits/train.jsonl", "results/data/split_summary.csv"]
    assert by_id[1].log == ["logs/data/write_splits.log"]
    assert by_id[1].end - by_id[1].start == 4  # new-style "Finished jobid:" line
    assert by_id[4].end - by_id[4].start == 24  # old-style "Finished job 4." line
    assert by_id[4].benchmark == "benchmarks/models/convert_tiny.tsv"
    assert by_id[7].wildcards == "model=m_int" and by_id[7].label == "train_adapter[model=m_int]"
    assert by_id[7].threads == 2 and by_id[1].threads == 1  # one thread is not logged
    assert by_id[9].end is None and by_id[9].wall is None  # started, never finished
    assert elapsed == pytest.approx(62.5)


def test_benchmark_seconds_win_over_log_stamps(bench, tmp_path):
    jobs, _ = bench.parse_log(LOG)
    (tmp_path / "benchmarks" / "train").mkdir(parents=True)
    (tmp_path / "benchmarks" / "train" / "m_int.tsv").write_text(
        HEADER + "29.25\t0:00:29\t4000\t0\t0\t0\t0\t0\t0\t0\n"
    )
    (tmp_path / "benchmarks" / "other.tsv").write_text(HEADER + "1\t0:00:01\t1\t0\t0\t0\t0\t0\t0\t0\n")
    stray = bench.attach_benchmarks(tmp_path, jobs)
    assert stray == ["benchmarks/other.tsv"]  # no logged job claims it
    train = next(j for j in jobs if j.jobid == 7)
    assert train.wall == 29.25 and train.bench["max_rss"] == 4000


def test_rule_table_totals_shares_and_sources(bench, tmp_path):
    jobs, _ = bench.parse_log(LOG)
    (tmp_path / "benchmarks" / "train").mkdir(parents=True)
    (tmp_path / "benchmarks" / "train" / "m_int.tsv").write_text(
        HEADER + "30\t0:00:30\t4000\t0\t0\t0\t0\t0\t0\t0\n"
    )
    bench.attach_benchmarks(tmp_path, jobs)
    rows = {r["rule"]: r for r in bench.rule_table(jobs)}
    assert rows["train_adapter"]["source"] == "bench" and rows["train_adapter"]["peak_rss_mb"] == 4000
    assert rows["write_splits"]["source"] == "log" and rows["write_splits"]["peak_rss_mb"] is None
    # convert_embedded_model names a benchmark file that is missing: the log's stamps stand in.
    assert rows["convert_embedded_model"]["source"] == "log"
    assert rows["convert_embedded_model"]["wall_total_s"] == 24
    assert rows["score_binary"]["source"] == "unmeasured"
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0, abs=1e-3)
    assert list(rows)[0] == "train_adapter"  # largest first


def job(bench, jobid, seconds, inputs=(), outputs=()):
    return bench.Job(jobid=jobid, rule=f"r{jobid}", start=0.0, end=float(seconds),
                     inputs=list(inputs), outputs=list(outputs))  # fmt: skip


def test_critical_path_takes_the_heaviest_chain(bench):
    # a -> b -> d and a -> c -> d; b is slow, so the path is a, b, d.
    jobs = [
        job(bench, 1, 5, outputs=["a.txt"]),
        job(bench, 2, 10, inputs=["a.txt"], outputs=["b.txt"]),
        job(bench, 3, 2, inputs=["a.txt"], outputs=["c.txt"]),
        job(bench, 4, 1, inputs=["b.txt", "c.txt", "resources/raw.txt"], outputs=["d.txt"]),
        job(bench, 5, 12, outputs=["lonely.txt"]),
    ]
    length, chain = bench.critical_path(jobs)
    assert length == 16 and [j.jobid for j in chain] == [1, 2, 4]


def test_critical_path_follows_files_inside_directory_outputs(bench):
    jobs = [job(bench, 1, 30, outputs=["results/models/tiny"]),
            job(bench, 2, 4, inputs=["results/models/tiny/config.json"], outputs=["x"])]  # fmt: skip
    length, chain = bench.critical_path(jobs)
    assert length == 34 and [j.jobid for j in chain] == [1, 2]
    assert bench.critical_path([]) == (0.0, [])


def write_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header = {
        name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()
    }
    blob = json.dumps({**header, "__metadata__": {"format": "pt"}}).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)


def test_param_count_reads_safetensors_headers(bench, tmp_path):
    write_safetensors(tmp_path / "model.safetensors", {"embed": [10, 4], "proj": [4, 4], "norm": [4]})
    assert bench.param_count(tmp_path) == 60
    assert bench.param_count(tmp_path / "missing") is None


def test_generation_fraction_counts_2n_per_prompt_and_new_token(bench, tmp_path):
    model = tmp_path / "results" / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    write_safetensors(model / "model.safetensors", {"w": [1000, 1000]})  # N = 1e6
    out = tmp_path / "results" / "generate" / "m0" / "test.binary.jsonl"
    out.parent.mkdir(parents=True)
    records = [{"n_new_tokens": 50, "n_prompt_tokens": 150, "decoding": {"dtype": "float32"}}] * 4
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "gen.log").write_text(
        "INFO m0 binary test: 4 items, 200 new tokens in 2.0s (2 items/s)\n"
    )
    gen = bench.Job(jobid=1, rule="generate_answers", inputs=["results/models/tiny"],
                    outputs=["results/generate/m0/test.binary.jsonl"], log=["logs/gen.log"])  # fmt: skip
    [row] = bench.generation_paths(tmp_path, [gen], {1: {"float32_large": 1.0}, 2: {"float32_large": 9.0}})
    # (600 prompt + 200 new) tokens x 2 x 1e6 FLOP over 2 s = 0.8 GFLOP/s against 1 GFLOP/s.
    assert row["path"] == "generate test.binary" and row["prompt_tokens"] == 600
    assert row["tokens_per_s"] == 400 and row["gflop_per_s"] == 0.8 and row["fraction_of_limit"] == 0.8
    assert row["threads"] == 1  # held to the one-thread rate, not the machine's


def test_shared_prefix_counts_the_tokens_every_prompt_starts_with(bench, tiny_model):
    model = Path(tiny_model)
    records = [{"prompt": [{"role": "user", "content": f"the groups are {word}"}]} for word in ("same", "a")]

    # <user> the groups are | same / a ...: the chat header and three words are shared.
    def shared(rows):
        return bench.shared_prefix_tokens(bench._prompt_ids(rows, model, {}))

    assert shared(records) == 4
    assert shared(records[:1]) == 6  # one prompt shares all of itself
    assert shared([{"n_new_tokens": 1}]) == 0  # no prompt recorded


def test_training_fraction_counts_4n_base_and_6n_lora(bench, tmp_path):
    folder = tmp_path / "results" / "adapters" / "m_int"
    folder.mkdir(parents=True)
    meta = {"config": {"dtype_resolved": "bfloat16"}, "train_tokens_per_s": 100.0, "train_real_tokens": 1000,
            "wall_s": 10.0, "total_params": 1_100_000, "trainable_params": 100_000}  # fmt: skip
    (folder / "train_config.json").write_text(json.dumps(meta))
    skipped = tmp_path / "results" / "adapters" / "m_dart"
    skipped.mkdir(parents=True)
    (skipped / "train_config.json").write_text(json.dumps({"skipped": "nothing to repair", "steps": 0}))
    jobs = [bench.Job(jobid=i, rule="train_adapter", wildcards=f"model={name}",
                      outputs=[f"results/adapters/{name}/train_config.json"])
            for i, name in enumerate(["m_int", "m_dart"])]  # fmt: skip
    jobs[0].threads = 2
    rates = {1: {"bfloat16_large": 9.0}, 2: {"bfloat16_large": 1.0}}
    trained, idle = bench.training_paths(tmp_path, jobs, rates)
    # 100 tokens/s x (4 x 1e6 + 6 x 1e5) FLOP = 0.46 GFLOP/s.
    assert trained["path"] == "train m_int" and trained["dtype"] == "bfloat16"
    assert trained["gflop_per_s"] == 0.5 and trained["fraction_of_limit"] == pytest.approx(0.46)
    assert idle == {"path": "train m_dart", "skipped": "nothing to repair"}


def test_config_files_map_into_the_scratch_copy(bench, tmp_path):
    assert bench.in_scratch(str(ROOT / "config" / "smoke.yaml"), tmp_path) == str(
        tmp_path / "config" / "smoke.yaml"
    )
    outside = tmp_path / "mine.yaml"
    assert bench.in_scratch(str(outside), Path("/scratch")) == str(outside.resolve())


@pytest.mark.parametrize(
    "flags, dtypes",
    [
        ({"avx512_bf16": False, "amx_bf16": False}, {"float32"}),
        ({"avx512_bf16": True, "amx_bf16": False}, {"float32", "bfloat16"}),
        ({"avx512_bf16": False, "amx_bf16": True}, {"float32", "bfloat16"}),
    ],
)
def test_bf16_rates_are_timed_only_where_the_cpu_has_bf16(bench, monkeypatch, flags, dtypes):
    # Emulated bf16 (AVX2 only) times at 0.3 GFLOP/s: minutes for a rate no CPU job runs at.
    # No kernel runs here: the products are recorded, not computed, on a clock of 1 s a reading.
    import types

    import torch

    monkeypatch.setattr(bench, "cpu_info", lambda: {"model": "test", "avx512f": False, **flags})
    multiplied = []

    def record(a, b):
        multiplied.append((str(a.dtype).removeprefix("torch."), a.shape[0], b.shape[1]))
        return a

    threads = []  # recorded, not set: the rest of the session keeps its torch threads
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(torch.Tensor, "__matmul__", record)
    monkeypatch.setattr(torch, "randn", lambda *shape, dtype, device: torch.empty(*shape, dtype=dtype))
    clock = iter(range(1_000_000))
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    rates = bench.matmul_rates(1, repeats=1, budget=1e6)
    assert threads == [1] and {key.rsplit("_", 1)[0] for key in rates} == dtypes
    assert {dtype for dtype, _, _ in multiplied} == dtypes  # no bf16 product where none is timed
    assert {(m, n) for _, m, n in multiplied} == {(2048, 2048), (32, 1536)}
    # One inner product a repeat (budget below one product): 1 s each, so the rate is flop / 1e9.
    shapes = {"large": (2048, 2048, 2048), "decode": (32, 576, 1536)}
    expected = {
        f"{d}_{s}": round(2.0 * m * k * n / 1e9, 1) for d in dtypes for s, (m, k, n) in shapes.items()
    }
    assert rates == expected
