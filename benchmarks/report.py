"""Results files: JSON, markdown tables and PNG plots, each written atomically."""

from __future__ import annotations

import io
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from export.fsutil import atomic_write

MIB = 2**20


def machine() -> dict:
    """Where the numbers were measured."""
    import psutil

    cpu = (
        next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").is_file()
        else platform.processor()
    )
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def _num(v, fmt: str = ".2f") -> str:
    return "" if v is None else format(v, fmt)


def _machine_line(m: dict) -> str:
    return (
        f"Measured on {m['cpu']}, {m['logical_cores']} logical cores, {m['ram_gib']} GiB RAM, {m['os']}, "
        f"{m['date_utc']} UTC (1-minute load average at start: {m['load_average_at_start'][0]})."
        + (f" **Note: {m['note']}**" if m.get("note") else "")
    )


def bench_markdown(result: dict) -> str:
    lat = result["latency"]
    lines = [
        "# CAS-ViT latency, size and compute",
        "",
        _machine_line(result["machine"]),
        "",
        f"Resolution {lat['resolution']}x{lat['resolution']}, batch 1, {lat['repeats']} timed runs per row after "
        f"{lat['warmup']} warm-up runs, interleaved in rounds of {lat['round_size']}. Float32 2048^3 matmul peak "
        "(best of torch and ONNX Runtime): "
        + ", ".join(
            f"{v['best']} GFLOP/s on {k} thread{'s' if k != '1' else ''} (torch {v['torch']}, ONNX Runtime "
            f"{v['onnxruntime']})"
            for k, v in lat["matmul_peak_gflops"].items()
        )
        + ". % of core peak = GFLOP/s / (threads x the 1-thread peak); int8 rows can exceed 100 % "
        "since their MACs are not float32.",
        "",
        "| variant | GMACs (conv, deploy form) | published GMACs |",
        "|---|---:|---:|",
    ]
    lines += [f"| {v} | {g:.3f} | {_num(lat['published_gmacs'].get(v))} |" for v, g in lat["gmacs"].items()]
    lines += [
        "",
        "| variant | format | precision | threads | median ms | p90 ms | GFLOP/s | % of core peak | "
        "model RSS MiB | peak RSS MiB | size MiB | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in lat["rows"]:
        frac = r.get("core_peak_fraction")
        lines.append(
            f"| {r['variant']} | {r['format']} | {r.get('precision', '')} | {r.get('threads', '')} | "
            f"{_num(r.get('median_ms'))} | {_num(r.get('p90_ms'))} | {_num(r.get('gflops'), '.1f')} | "
            f"{_num(None if frac is None else 100 * frac, '.1f')} | {_num(r.get('model_rss_mib'), '.0f')} | "
            f"{_num(r.get('peak_rss_mib'), '.0f')} | {_num(r['size_bytes'] / MIB if r.get('size_bytes') else None)} | "
            f"{r.get('status', '')}{': ' + _cell(r['error']) if r.get('error') else ''} |"
        )
    if lat.get("naive"):
        lines += [
            "",
            "## Naive export versus ours",
            "",
            "Naive: `torch.onnx.export(model, (x,), path)` of the eval model, then `onnx2tf -i model.onnx` "
            "(both at their defaults), then stock LiteRT.",
            "",
            "| variant | naive ONNX nodes (ops) | our ONNX nodes | onnx2tf at defaults | offline stand-in "
            "| naive .tflite in stock LiteRT | our tflite-fp32 ops | latency naive / ours |",
            "|---|---|---:|---|---|---|---:|---|",
        ]
        for v, n in lat["naive"].items():
            rec = n["record"]
            onnx = rec.get("onnx", {})
            ops = ", ".join(f"{k} {c}" for k, c in onnx.get("ops", {}).items())
            lines.append(
                f"| {v} | {_cell(onnx.get('nodes', onnx.get('error', rec.get('error', ''))))} ({ops}) | "
                f"{_num(n['nodes_ours'].get('onnx'), 'd')} | {_stage(rec.get('onnx2tf'))} | "
                f"{_stage(rec.get('onnx2tf_offline_stand_in'))} | "
                + "; ".join(
                    f"{Path(e['file']).name}: {'runs' if e.get('runs') else 'fails: ' + _cell(e.get('error', ''))}"
                    f" ({e.get('nodes', '?')} ops{', ' + _flex(e) if _flex(e) else ''})"
                    for e in rec.get("litert", [])
                )
                + f" | {_num(n['nodes_ours'].get('tflite-fp32'), 'd')} | "
                + ", ".join(f"{k} {x:.2f}" for k, x in n["latency_ratio_naive_over_ours"].items())
                + " |"
            )
    lines += ["", "Columns and methods: see docs/benchmarks.md.", ""]
    return "\n".join(lines)


def _cell(text) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _stage(stage: dict | None) -> str:
    if not stage:
        return "not run"
    return "ok" if stage.get("ok") else f"fails: {_cell(stage.get('error', ''))[:200]}"


def _flex(entry: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in entry.get("ops", {}).items() if k.startswith(("Flex", "CUSTOM")))


def accuracy_markdown(result: dict) -> str:
    lines = [
        "# CAS-ViT top-1 on scikit-learn digits, per format and precision",
        "",
        _machine_line(result["machine"]),
        "",
    ]
    for rec in result["accuracy"]:
        t = rec.get("training", {})
        lines += [
            f"## CAS-ViT-{rec['variant']} at {rec['resolution']}x{rec['resolution']}",
            "",
            f"Trained {t.get('epochs')} epochs (seed {t.get('seed')}, {t.get('train_images')} training images, "
            f"{t.get('train_seconds')} s, {t.get('threads')} torch thread(s)); "
            f"{rec['test_images']} held-out test images; "
            f"int8 calibrated on {rec['calibration_images']} training images. One test image is "
            f"{100 / max(1, rec['test_images']):.2f} points of top-1.",
            "",
            "| artifact | format | precision | size KiB | top-1 | agreement with eager | status |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for r in rec["rows"]:
            lines.append(
                f"| {r['name']} | {r.get('format', '')} | {r.get('precision', '')} | "
                f"{_num(r['size_bytes'] / 1024 if r.get('size_bytes') else None, '.0f')} | "
                f"{_num(r.get('top1'), '.4f')} | {_num(r.get('agreement_with_eager'), '.4f')} | "
                f"{r['status']}{': ' + _cell(r['error'])[:300] if r.get('error') else ''} |"
            )
        lines.append("")
    return "\n".join(lines)


def _save_png(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, buf.getvalue())


def latency_plot(latency: dict, path: Path) -> None:
    """Median latency per format (bars) and variant (groups), one panel per thread count; p90 as whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in latency["rows"] if r.get("median_ms")]
    threads = sorted({r["threads"] for r in rows}) or [1]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    formats = list(dict.fromkeys(r["format"] for r in rows))
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 4.5), squeeze=False, sharey=True)
    width = 0.8 / max(1, len(formats))
    for ax, t in zip(axes[0], threads):
        for i, fmt in enumerate(formats):
            pick = [
                next((r for r in rows if r["variant"] == v and r["format"] == fmt and r["threads"] == t), None)
                for v in variants
            ]
            med = np.array([r["median_ms"] if r else np.nan for r in pick])
            p90 = np.array([r["p90_ms"] if r else np.nan for r in pick])
            ax.bar(
                np.arange(len(variants)) + i * width,
                med,
                width,
                label=fmt,
                yerr=[np.zeros_like(med), np.nan_to_num(p90 - med)],
                capsize=2,
            )
        ax.set_xticks(np.arange(len(variants)) + 0.4 - width / 2, [f"CAS-ViT-{v}" for v in variants])
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}, {latency['resolution']}x{latency['resolution']}")
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("median latency, ms (whisker: p90)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save_png(fig, path)
    plt.close(fig)


def accuracy_plot(accuracy: list[dict], path: Path) -> None:
    """Top-1 (left) and file size (right) per artifact, one bar group per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(dict.fromkeys(r["name"] for rec in accuracy for r in rec["rows"] if r.get("top1") is not None))
    fig, (ax_acc, ax_size) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(accuracy))
    for i, rec in enumerate(accuracy):
        by_name = {r["name"]: r for r in rec["rows"]}
        x = np.arange(len(names)) + i * width
        ax_acc.bar(
            x, [by_name.get(n, {}).get("top1") or np.nan for n in names], width, label=f"CAS-ViT-{rec['variant']}"
        )
        ax_size.bar(
            x,
            [(by_name.get(n, {}).get("size_bytes") or np.nan) / 1024 for n in names],
            width,
            label=f"CAS-ViT-{rec['variant']}",
        )
    for ax, label in ((ax_acc, "top-1 on the digits test split"), (ax_size, "file size, KiB (log)")):
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    top1 = [r["top1"] for rec in accuracy for r in rec["rows"] if r.get("top1") is not None]
    ax_acc.set_ylim(max(0.0, min(top1, default=0.0) - 0.05), 1.0)
    ax_size.set_yscale("log")
    _save_png(fig, path)
    plt.close(fig)
