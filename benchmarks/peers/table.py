"""Rows of the peer benchmark: the parity verdict that decides what is timed, status
rows for peers that could not run, the markdown table and the plot. Nothing here
imports a peer package (the core environment renders what .venv-peers measured)."""

from __future__ import annotations

from pathlib import Path

from export.parity import centered_cosines, check

from . import PEERS

PARITY_KEYS = ("max_rel", "min_cosine", "min_centered_cosine", "top1_agreement")


def short_error(error: BaseException | str) -> str:
    """The last non-empty line of an error, as one short line."""
    text = str(error).strip()
    last = text.splitlines()[-1] if text else ""
    name = type(error).__name__ if isinstance(error, BaseException) else ""
    return (f"{name}: {last}" if name else last)[:300]


def parity_verdict(reference, output, precision: str, photos=None) -> dict:
    """Our export gate for ``precision`` applied to a peer: the row is timed only when it
    passes; a miss is reported with its metrics and the thresholds it missed. With a
    boolean mask ``photos`` over the inputs, also the worst centered cosine on the photos."""
    result = check(reference, output, precision)
    row = {"parity": {k: result["metrics"][k] for k in PARITY_KEYS}, "parity_misses": result["misses"]}
    if photos is not None:
        row["parity"]["photos_min_centered_cosine"] = photos_centered_cosine(reference, output, photos)
    row["status"] = "ok" if result["passed"] else "parity missed: " + "; ".join(result["misses"])
    return row


def photos_centered_cosine(reference, output, photos) -> float:
    """The lowest centered cosine over the inputs ``photos`` marks, each output centered by
    the reference's mean over all inputs (``export.parity.centered_cosines``): the seeded
    noise inputs are far from every calibration image, the photos are what a camera sees."""
    import numpy as np

    return float(centered_cosines(reference, output)[np.asarray(photos, bool)].min())


def unavailable_rows(status: str, error: str) -> list[dict]:
    """Every peer as a row with the same status (not installed, run failed ...)."""
    return [
        {
            "format": p.name,
            "toolchain": p.toolchain,
            "form": p.form,
            "precision": p.precision,
            "runtime": p.runtime,
            "status": status,
            "error": error,
        }
        for p in PEERS
    ]


def _ratio(row: dict, rows: list[dict], threads: str) -> float | None:
    """This row's median over ours at the same precision and thread count."""
    ours = next((r for r in rows if r["toolchain"] == "ours" and r["precision"] == row["precision"]), None)
    mine = row.get("timing", {}).get(threads, {}).get("median_ms")
    base = (ours or {}).get("timing", {}).get(threads, {}).get("median_ms")
    return round(mine / base, 3) if mine and base else None


def partitions_text(row: dict) -> str:
    part = row.get("partitions")
    if not part:
        return ""
    unit = "subgraphs" if row["runtime"] == "executorch" else "DELEGATE nodes"
    outside = ", ".join(f"{n} {op}" for op, n in part["outside_ops"].items())
    return f"{part['delegated']} {unit}" + (f" + {part['outside']} outside ({outside})" if part["outside"] else "")


def markdown(result: dict) -> str:
    """The peer table: one line per (artifact, thread count), status rows included."""
    rows = result["rows"]
    threads = [str(t) for t in result.get("threads", [1])]
    lines = [
        f"## Peer toolchains, {result.get('variant')}@{result.get('res')}",
        "",
        "Same seeded weights, same calibration images, parity against eager before timing; timed interleaved "
        "in one process (our .tflite files and litert-torch's in the same LiteRT, ExecuTorch programs in its "
        "runtime). ratio = median / ours at the same precision and thread count."
        + (
            f" Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}."
            if "versions" in result
            else ""
        ),
        "",
        "| artifact | precision | threads | median ms | ratio vs ours | XNNPACK partitions | conversion s | "
        "max rel | centered cosine | centered cosine, photos | status |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        parity = row.get("parity", {})
        for t in threads if row.get("timing") else [""]:
            median = row.get("timing", {}).get(t, {}).get("median_ms") if t else None
            ratio = _ratio(row, rows, t) if t else None
            status = row["status"] + (f" ({row['error']})" if row.get("error") else "")
            lines.append(
                f"| {row['format']} | {row['precision']} | {t} | {'' if median is None else f'{median:.2f}'} | "
                f"{'' if ratio is None else f'{ratio:.2f}'} | {partitions_text(row)} | "
                f"{row.get('convert_seconds', '')} | {_fmt(parity.get('max_rel'), '.2e')} | "
                f"{_fmt(parity.get('min_centered_cosine'), '.4f')} | "
                f"{_fmt(parity.get('photos_min_centered_cosine'), '.4f')} | {status.replace('|', '/')} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def plot(result: dict, path: Path) -> None:
    """Median latency per artifact (bars) at each thread count, labelled with the
    XNNPACK partitions and conversion seconds; rows that were not timed are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..report import _save_png

    rows = [r for r in result["rows"] if r.get("timing")]
    threads = [str(t) for t in result.get("threads", [1])]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4.5))
    width = 0.8 / max(1, len(threads))
    for i, t in enumerate(threads):
        ax.bar(
            np.arange(len(rows)) + i * width,
            [r["timing"].get(t, {}).get("median_ms", np.nan) for r in rows],
            width,
            label=f"{t} thread(s)",
        )
    labels = [
        f"{r['format']}\n{partitions_text(r).split(' + ')[0]}"
        + (f"\nconv {r['convert_seconds']} s" if r.get("convert_seconds") else "")
        for r in rows
    ]
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("median latency, ms")
    ax.set_title(f"CAS-ViT-{result.get('variant')} @ {result.get('res')}: ours vs peer toolchains")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save_png(fig, path)
    plt.close(fig)
