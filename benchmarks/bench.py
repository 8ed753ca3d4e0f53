"""The latency part of ``make bench``: export, naive path, interleaved timing, memory.

Every row of the result is one (variant, format, threads) configuration; a format
that could not be exported or loaded is a row with a status, not a gap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export import targets as export_targets
from export.exported import artifact_from_entry

from . import artifacts, flops, naive
from .latency import interleaved, load_runners, summarize
from .runners import Config, memory_in_subprocess

# Targets with a Linux runtime (Core ML has none; it is in the accuracy part only).
LATENCY_TARGETS = tuple(t.name for t in export_targets.records() if t.bench is not None)


def add_timing_arguments(group) -> None:
    """The timing options ``python -m benchmarks`` and ``python -m benchmarks.exported`` share."""
    group.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    group.add_argument("--repeats", type=int, default=50, help="timed runs per configuration")
    group.add_argument("--warmup", type=int, default=5, help="untimed runs per configuration before timing")
    group.add_argument("--round-size", type=int, default=5, help="consecutive timed runs per configuration per round")
    group.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the per-runtime memory subprocesses"
    )


def _state_bytes(variant: str, deploy_form: bool) -> int:
    from casvit import create_model, deploy

    model = create_model(variant).eval()
    model = deploy(model) if deploy_form else model
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _variant_configs(
    variant: str,
    res: int,
    threads: list[int],
    work: Path,
    targets: list[str],
    export_args: list[str],
    with_naive: bool,
    log,
) -> tuple[list[tuple[Config, dict]], dict, list[dict]]:
    """(config, row facts) pairs, the naive-path record and rows for formats that cannot run."""
    onnx_runtime, tflite_runtime = (export_targets.get(name).bench for name in ("onnx", "tflite"))  # naive rows
    base = [
        (
            dict(name="torch-eager", runtime="torch", deploy_form=False),
            {"family": "torch", "precision": "fp32", "size_bytes": _state_bytes(variant, False), "status": "eager"},
        ),
        (
            dict(name="torch-deploy", runtime="torch", deploy_form=True),
            {"family": "torch", "precision": "fp32", "size_bytes": _state_bytes(variant, True), "status": "eager"},
        ),
    ]
    missing = []
    for target in targets:
        log(f"{variant}: exporting {target}")
        result = artifacts.export(target, variant, res, work / variant / target, export_args)
        for entry in artifacts.entries(result):
            if "file" not in entry:
                missing.append(
                    {"variant": variant, "format": entry["name"], **{k: entry[k] for k in ("status", "error")}}
                )
                continue
            art = artifact_from_entry(entry, result["out_dir"])
            base.append(
                (
                    dict(
                        name=entry["name"],
                        runtime=export_targets.get(target).bench,
                        path=str(art.path),
                        input_convention=art.input_convention,
                    ),
                    {
                        "family": target,
                        "precision": entry["precision"],
                        "size_bytes": entry["size_bytes"],
                        "status": entry["status"],
                        "nodes": sum(entry["audit"]["census"].values()),
                    },
                )
            )
    naive_record = None
    if with_naive:
        log(f"{variant}: naive export (torch.onnx.export + onnx2tf defaults)")
        naive_record = naive.run_in_subprocess(variant, res, work / variant / "naive")
        if naive_record.get("onnx", {}).get("ok"):
            base.append(
                (
                    dict(name="naive-onnx", runtime=onnx_runtime, path=naive_record["onnx"]["file"]),
                    {"family": "onnx", "precision": "fp32", "status": "naive", "nodes": naive_record["onnx"]["nodes"]},
                )
            )
        for entry in naive_record.get("litert", []):
            precision = "fp16" if "float16" in entry["file"] else "fp32"
            if entry.get("runs"):
                base.append(
                    (
                        dict(name=f"naive-tflite-{precision}", runtime=tflite_runtime, path=entry["file"]),
                        {
                            "family": "tflite",
                            "precision": precision,
                            "size_bytes": entry["size_bytes"],
                            "status": "naive",
                            "nodes": entry.get("nodes"),
                        },
                    )
                )
            else:
                missing.append(
                    {
                        "variant": variant,
                        "format": f"naive-tflite-{precision}",
                        "status": "does not run in stock LiteRT",
                        "error": entry.get("error"),
                    }
                )
    configs = [(_config(variant=variant, res=res, threads=t, **cfg), facts) for cfg, facts in base for t in threads]
    return configs, naive_record, missing


def _config(runtime, **fields) -> Config:
    """Eager torch (``runtime="torch"``) or a target's benchmark runtime."""
    return Config(runtime=runtime, **fields) if runtime == "torch" else Config.for_runtime(runtime, **fields)


def _file_size(path: str) -> int | None:
    return Path(path).stat().st_size if path and Path(path).is_file() else None


def run(
    variants: list[str],
    res: int,
    threads: list[int],
    repeats: int,
    warmup: int,
    round_size: int,
    work: Path,
    targets: list[str] = LATENCY_TARGETS,
    export_args: list[str] = (),
    with_naive: bool = True,
    with_memory: bool = True,
    log=print,
) -> dict:
    """The latency result: machine peak, per-variant GMACs, rows, naive-path records."""
    gmacs = {v: round(flops.variant_gmacs(v, res, res), 4) for v in variants}
    configs, naive_records, missing = [], {}, []
    for v in variants:
        cfgs, naive_records[v], not_run = _variant_configs(
            v, res, threads, work, list(targets), list(export_args), with_naive, log
        )
        configs += cfgs
        missing += not_run
    timed = measure(configs, gmacs, threads, repeats, warmup, round_size, with_memory, log)
    rows = missing + timed.pop("rows")
    return {
        "resolution": res,
        **timed,
        "published_gmacs": {v: flops.PUBLISHED_GMACS.get(v) for v in variants} if res == 224 else {},
        "rows": rows,
        "naive": naive_summary(naive_records, rows) if with_naive else {},
    }


def measure(
    configs: list[tuple[Config, dict]],
    gmacs: dict[str, float | None],
    threads: list[int],
    repeats: int,
    warmup: int,
    round_size: int,
    with_memory: bool = True,
    log=print,
    inputs: dict[str, np.ndarray] | None = None,
) -> dict:
    """The timing part of a latency result: one row per (config, row facts) pair, all
    timed interleaved in this process, memory measured in a fresh process per config
    at the most threads; the float32 matmul peak (the best of a measurement before and
    after the timing loop); the settings. ``inputs``: the input of each config key
    (default: ``runners.sample_input``)."""
    log("measuring the float32 matmul peak")
    peak = {str(t): flops.matmul_peak_gflops(t) for t in sorted({1, *threads})}
    runners, errors = load_runners([c for c, _ in configs], log, inputs)
    log(f"timing {len(runners)} configurations, {repeats} repeats each, interleaved")
    samples = interleaved(runners, repeats, warmup, round_size, log)
    after = {t: flops.matmul_peak_gflops(int(t)) for t in peak}
    peak = {t: {k: max(v, after[t][k]) for k, v in p.items()} for t, p in peak.items()}
    memory = {}
    if with_memory:
        for cfg, _ in configs:
            if cfg.threads == max(threads) and cfg.key in runners:
                log(f"memory: {cfg.key} in a fresh process")
                memory[(cfg.variant, cfg.name)] = memory_in_subprocess(cfg, x=(inputs or {}).get(cfg.key))
    rows = []
    for cfg, facts in configs:
        row = {
            "variant": cfg.variant,
            "format": cfg.name,
            "runtime": cfg.runtime,
            "threads": cfg.threads,
            **facts,
            "gmacs": gmacs[cfg.variant],
        }
        row.setdefault("size_bytes", _file_size(cfg.path))
        if cfg.key in errors:
            row.update(status="does not load/run", error=errors[cfg.key])
        else:
            row.update(summarize(samples[cfg.key], gmacs[cfg.variant], peak["1"]["best"], cfg.threads))
            row.update(memory.get((cfg.variant, cfg.name), {}))
        rows.append(row)
    return {
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
        "round_size": round_size,
        "matmul_peak_gflops": peak,
        "gmacs": gmacs,
        "rows": rows,
    }


def naive_summary(records: dict, rows: list[dict]) -> dict:
    """Per variant: what the naive path produced and its latency relative to ours."""

    def median(variant, name, threads):
        return next(
            (
                r.get("median_ms")
                for r in rows
                if r["variant"] == variant and r["format"] == name and r.get("threads") == threads
            ),
            None,
        )

    out = {}
    for v, rec in records.items():
        ours_nodes = {r["format"]: r.get("nodes") for r in rows if r["variant"] == v and r.get("nodes") is not None}
        ratios = {}
        for t in sorted({r["threads"] for r in rows if "threads" in r}):
            for naive_name, ours in (("naive-onnx", "onnx"), ("naive-tflite-fp32", "tflite-fp32")):
                a, b = median(v, naive_name, t), median(v, ours, t)
                if a and b:
                    ratios[f"{naive_name}/{ours}@{t}t"] = round(a / b, 3)
        out[v] = {"record": rec, "nodes_ours": ours_nodes, "latency_ratio_naive_over_ours": ratios}
    return out
