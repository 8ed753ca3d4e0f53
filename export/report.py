"""report.json and report.md of a run, written atomically into its output set."""

from __future__ import annotations

import json
from pathlib import Path

from . import accuracy, localize_report
from .checks import by_name, failure_summary
from .fsutil import atomic_write


def _fmt(v, digits=3):
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _offline_note(report: dict) -> str:
    """Exactly what the offline claim rests on (see export.offline)."""
    o = report.get("offline")
    if not o:
        return ""
    return (
        f" (Python audit hook on {', '.join(o['python_audit_hook']['events'])}; telemetry switched off: "
        + ", ".join(f"{k}={v}" for k, v in o["telemetry_switched_off"].items())
        + f"; OS level: {o['os_level']})"
    )


def preprocessing_line(p: dict) -> str:
    crop = (
        f"shorter side to size/{p['crop_pct']:g}, center crop"
        if p["crop_mode"] == "center"
        else "whole image resized, no crop"
    )
    return (
        f"- preprocessing ({p['source']}): {p['height']}x{p['width']}, {crop}, {p['interpolation']}, "
        f"mean {p['mean']}, std {p['std']}"
    )


def render_markdown(report: dict) -> str:
    s, w = report["spec"], report["weights"]
    lines = [
        f"# CAS-ViT-{s['variant']} export report",
        "",
        f"- resolution {s['resolution']}, batch {s['batch']}{' (dynamic in ONNX)' if s['dynamic_batch'] else ''}",
        "- input of each artifact: "
        + ", ".join(f"{a['name']} {a['input_convention']}" for a in report["artifacts"])
        + " (normalized = the preprocessing mean/std applied by the caller; unit/byte = RGB in [0,1]/[0,255], "
        "normalization inside the model)",
        f"- weights: {w['source']}"
        + ("" if w["for_deployment"] else " -- **NOT FOR DEPLOYMENT**")
        + (f", sha256 `{w['sha256'][:16]}...`" if w.get("sha256") else ""),
        *([preprocessing_line(report["preprocessing"])] if report.get("preprocessing") else []),
        f"- parity inputs: {', '.join(report['parity_inputs']['names'])}",
        f"- network attempts during export: {report['network_attempts']}" + _offline_note(report),
        f"- result: **{'PASSED' if report['passed'] else 'FAILED'}**"
        + (
            ""
            if report["passed"]
            else (
                " -- this is a REJECTED run: nothing here is for deployment"
                + (
                    "; the previous set at the top of the output folder was kept"
                    if report.get("previous_set_kept")
                    else ""
                )
            )
        ),
        "",
        "| artifact | precision | size (KiB) | convert (s) | audit | max abs | max rel | min cosine "
        "| centered cosine | top-1 | top-5 | parity | status |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for a in report["artifacts"]:
        m = a["parity"]["metrics"] if a.get("parity") else {}
        lines.append(
            f"| {a['file']} | {a['precision']} | {a['size_bytes'] / 1024:.0f} | {a['convert_seconds']:.1f} | "
            f"{by_name('audit').status(a)} | "
            + " | ".join(_fmt(m.get(k, float("nan"))) for k in ("max_abs", "max_rel"))
            + f" | {m.get('min_cosine', float('nan')):.6f} | {m.get('min_centered_cosine', float('nan')):.4f}"
            f" | {_fmt(m.get('top1_agreement'))} | {_fmt(m.get('top5_agreement'))} | "
            f"{by_name('parity').status(a)} | "
            f"{a['status']}{' (' + failure_summary(a) + ')' if not a.get('passed', True) else ''} |"
        )
    lines += ["", *accuracy.markdown(report), *localize_report.markdown(report), "## Per artifact", ""]
    for a in report["artifacts"]:
        lines += [
            f"### {a['name']}",
            "",
            f"- file `{a['file']}`, sha256 `{a['sha256']}`",
            f"- verified with: {a['runtime']}",
        ]
        if a.get("parity"):
            lines.append(f"- tolerance: {json.dumps(a['parity']['tolerance'])}")
        lines.append("- op census: " + ", ".join(f"{k} {v}" for k, v in a["audit"]["census"].items()))
        for k, v in a.get("details", {}).items():
            lines.append(f"- {k}: {v}")
        lines.append("")
    lines += ["## Tool versions", "", *(f"- {k} {v}" for k, v in report["versions"].items()), ""]
    return "\n".join(lines)


def write_reports(folder: Path, report: dict) -> None:
    """report.json and report.md of a run (the manifest is written by ``export.outset``)."""
    atomic_write(folder / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    atomic_write(folder / "report.md", render_markdown(report))
