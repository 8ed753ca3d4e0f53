"""Every rendering of a run's report (``export.report.RunReport``), in one place:
report.json, report.md and the console table (their per-layer localization sections
from ``export.localize_report``)."""

from __future__ import annotations

import json
from pathlib import Path

from . import localize_report
from .checks import by_name, failure_summary
from .errors import shown
from .fsutil import atomic_write
from .report import RunReport


def write_reports(folder: Path, report: RunReport) -> None:
    """report.json and report.md of a run (the manifest is written by ``export.outset``)."""
    write_report_data(folder, report.to_json())


def write_report_data(folder: Path, data: dict) -> None:
    """report.json from its JSON form, and report.md rendered from it, each atomically."""
    atomic_write(folder / "report.json", json.dumps(data, indent=2) + "\n")
    atomic_write(folder / "report.md", _markdown(data))


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


def _classes_line(report: dict, count: int = 5) -> str:
    labels = report.get("labels") or []
    first = ", ".join(f"`{name}`" for name in labels[:count]) + (", ..." if len(labels) > count else "")
    return f"- {report['spec']['num_classes']} classes" + (f"; labels {first}" if labels else "")


def _markdown(report: dict) -> str:
    s, w = report["spec"], report["weights"]
    lines = [
        f"# CAS-ViT-{s['variant']} export report",
        "",
        f"- resolution {s['resolution']}, batch {s['batch']} (each artifact's details say whether it is dynamic)",
        _classes_line(report),
        "- input of each artifact: "
        + ", ".join(f"{a['name']} {a['input_convention']}" for a in report["artifacts"])
        + " (normalized = the preprocessing mean/std applied by the caller; unit/byte = RGB in [0,1]/[0,255], "
        "normalization inside the model)",
        f"- weights: {w['source']}"
        + ("" if w["for_deployment"] else " -- **NOT FOR DEPLOYMENT**")
        + (f", sha256 `{w['sha256'][:16]}...`" if w.get("sha256") else ""),
        *([preprocessing_line(report["preprocessing"])] if report.get("preprocessing") else []),
        f"- parity inputs: {', '.join(report['parity_inputs']['names'])}"
        + "".join(f"; at {size} also in `{g['file']}`" for size, g in report["golden"].get("sizes", {}).items()),
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
            f"{by_name('audit').status(a)} | " + _metric_cells(m) + f" | {by_name('parity').status(a)} | "
            f"{a['status']}{' (' + failure_summary(a) + ')' if not a.get('passed', True) else ''} |"
        )
        for size, result in _further_sizes(a):
            status = "ok" if result["passed"] else "FAIL: " + "; ".join(result["misses"])
            lines.append(f"| at {size} | | | | | {_metric_cells(result['metrics'])} | {status} | |")
    notes = [f"> Note from a converter: {w}" for w in report.get("library_warnings", [])]
    lines += ["", *notes, *([""] if notes else []), *accuracy_markdown(report), *localize_report.markdown(report)]
    lines += validations_markdown(report)
    lines += ["## Per artifact", ""]
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


def _metric_cells(m: dict) -> str:
    return (
        " | ".join(_fmt(m.get(k, float("nan"))) for k in ("max_abs", "max_rel"))
        + f" | {m.get('min_cosine', float('nan')):.6f} | {m.get('min_centered_cosine', float('nan')):.4f}"
        f" | {_fmt(m.get('top1_agreement'))} | {_fmt(m.get('top5_agreement'))}"
    )


def _further_sizes(a: dict) -> list[tuple[str, dict]]:
    """(size, parity result) at each input size an artifact accepts besides the spec's."""
    return list(((a.get("parity") or {}).get("sizes") or {}).items())[1:]


MAX_CLASS_ROWS = 100  # per-class rows in report.md (report.json has every class)


def _modes(converted: dict[str, int]) -> str:
    """'3 images stored as L, 1 as CMYK'."""
    parts = [f"{n} {'image' if n == 1 else 'images'} stored as {mode}" for mode, n in converted.items()]
    return ", ".join(parts)


def accuracy_markdown(report: dict) -> list[str]:
    """report.md lines: warnings, then the accuracy table and the per-class table."""
    lines = [f"> **WARNING**: {w}" for w in report.get("warnings", [])]
    acc = report.get("accuracy")
    if not acc:
        return lines + ([""] if lines else [])
    measured = [a for a in report["artifacts"] if a.get("accuracy")]
    rows = [(a["file"], a["name"], a["accuracy"]["details"], a["accuracy"]["passed"]) for a in measured]
    return [
        *lines,
        *([""] if lines else []),
        f"## Accuracy on `{acc['folder']}`",
        "",
        *_images_lines(acc),
        "",
        *accuracy_tables(acc, acc["eager"], rows),
    ]


def _images_lines(acc: dict) -> list[str]:
    """What an accuracy measurement ran on, and its gate."""
    return [
        f"- {acc['images_measured']} images in {len(acc['classes'])} classes ({acc['images_found']} found"
        + (
            f", {acc['calibration_images']} taken for int8 calibration and left out, listed in report.json"
            if acc["calibration_images"]
            else ""
        )
        + ")",
        *(
            [f"- converted to RGB as torchvision's ImageFolder does: {_modes(acc['converted_to_rgb'])}"]
            if acc.get("converted_to_rgb")
            else []
        ),
        "- gate: top-1 drop vs eager at most "
        + (
            f"{acc['max_top1_drop']:g} points"
            if acc["max_top1_drop"] is not None
            else "fp32 0, fp16 0.1, int8 and compressed weights 1.0 points"
        )
        + ", or one image",
    ]


def _gate_cell(passed: bool | None) -> str:
    return "not gated" if passed is None else "ok" if passed else "FAIL"


def accuracy_tables(acc: dict, eager: dict | None, rows: list[tuple], speed: bool = False) -> list[str]:
    """The accuracy table (eager first; None: not measured) and the per-class table of
    ``rows``: (file, artifact name, the accuracy details, gate passed or None); ``speed``
    adds images/s."""
    rate = " images/s |" if speed else ""
    lines = [
        f"| model | top-1 % | top-5 % | agrees with eager % | images | seconds |{rate} top-1 drop (points) | gate |",
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if speed else "") + "---:|---|",
    ]
    if eager is not None:
        e_rate = f" {eager['images_per_second']:.1f} |" if speed else ""
        lines.append(
            f"| eager PyTorch | {eager['top1']:.2f} | {eager['top5']:.2f} | 100.00 | {eager['images']} | "
            f"{eager['seconds']:.1f} |{e_rate} | |"
        )
    for file, _, d, passed in rows:
        agrees = f"{d['agreement']:.2f}" if "agreement" in d else ""
        drop = f"{d['top1_drop']:.2f}" if "top1_drop" in d else ""
        d_rate = f" {d['images_per_second']:.1f} |" if speed else ""
        lines.append(
            f"| {file} | {d['top1']:.2f} | {d['top5']:.2f} | {agrees} | {d['images']} | {d['seconds']:.1f} |"
            f"{d_rate} {drop} | {_gate_cell(passed)} |"
        )
    models = ([("eager", eager)] if eager is not None else []) + [(name, d) for _, name, d, _ in rows]
    lines += [
        "",
        "Per class (top-1 %):",
        "",
        "| class | images | " + " | ".join(name for name, _ in models) + " |",
        "|---|---:|" + "---:|" * len(models),
    ]
    classes, counts = list(models[0][1]["per_class"]) if models else [], acc.get("class_counts", {})
    for cid, name in list(zip(classes, acc["classes"]))[:MAX_CLASS_ROWS]:
        lines.append(
            f"| {name} | {counts.get(name, '')} | " + " | ".join(f"{d['per_class'][cid]:.1f}" for _, d in models) + " |"
        )
    if len(classes) > MAX_CLASS_ROWS:
        lines.append(f"\n(first {MAX_CLASS_ROWS} of {len(classes)} classes; report.json has all)")
    return lines + [""]


def validations_markdown(report: dict) -> list[str]:
    """report.md lines of every later validation of the set (``python -m export.evaluate``)."""
    lines = []
    for v in report.get("validations", []):
        lines += [
            f"## Validation on `{v['folder']}` ({v['date_utc']} UTC)",
            "",
            *_images_lines(v),
            f"- eager PyTorch: {v['eager_note']}",
            f"- {v['workers']} worker processes per runtime ({v['cores']} cores, 1-minute load average at start "
            f"{v['load_average_at_start'][0]}), one thread each; images decoded once in {v['decode_seconds']:.1f} s; "
            "seconds and images/s count inference only (runtimes loaded)",
            f"- result: **{'PASSED' if v['passed'] else 'FAILED'}**"
            + ("" if v["eager"] is not None else " (no eager reference: accuracy reported, not gated)"),
            *(f"- {a['file']}: **FAIL**: {a['summary']}" for a in v["artifacts"] if "top1" not in a),
            "",
            *accuracy_tables(
                v, v["eager"], [(a["file"], a["name"], a, a["passed"]) for a in v["artifacts"] if "top1" in a], True
            ),
        ]
    return lines


def accuracy_console_lines(report: dict) -> list[str]:
    """The accuracy summary under the CLI's parity table."""
    lines = [f"WARNING: {w}" for w in report.get("warnings", [])]
    acc = report.get("accuracy")
    if not acc:
        return lines
    e = acc["eager"]
    lines += [
        f"accuracy on {acc['images_measured']} images of {acc['folder']}:",
        f"  {'eager PyTorch':<44} top-1 {e['top1']:6.2f}%  top-5 {e['top5']:6.2f}%",
    ]
    for a in report["artifacts"]:
        if a.get("accuracy"):
            d = a["accuracy"]["details"]
            lines.append(
                f"  {a['file']:<44} top-1 {d['top1']:6.2f}%  top-5 {d['top5']:6.2f}%  "
                f"agrees {d['agreement']:6.2f}%  {d['seconds']:6.1f} s  "
                f"{'ok' if a['accuracy']['passed'] else 'FAIL: ' + a['accuracy']['summary']}"
            )
    return lines


def console_table(report: RunReport, out_dir: Path) -> str:
    """The table the CLI prints after a run: one line per artifact, then notes and accuracy."""
    report = report.to_json()
    lines = [
        f"{'artifact':<46} {'size KiB':>9} {'max rel':>9} {'cosine':>10} {'centered':>9} "
        f"{'top-1':>6} {'top-5':>6}  status"
    ]
    for a in report["artifacts"]:
        m = a["parity"]["metrics"] if a.get("parity") else {}
        status = a["status"] + (f" ({failure_summary(a)})" if not a["passed"] else "")
        lines.append(f"{a['file']:<46} {a['size_bytes'] / 1024:>9.0f} {_console_numbers(m)}  {status}")
        for size, result in _further_sizes(a):
            label = f"  at {size}"
            lines.append(
                f"{label:<46} {'':>9} {_console_numbers(result['metrics'])}  {'ok' if result['passed'] else 'FAIL'}"
            )
    if not report["weights"]["for_deployment"]:
        lines.append("NOTE: random weights -- these artifacts are NOT FOR DEPLOYMENT")
    lines += accuracy_console_lines(report)
    lines += localize_report.console_lines(report)
    lines.append(f"report: {shown(str(out_dir / 'report.md'))}")
    return "\n".join(lines)


def validation_console(v: dict, out_dir: Path) -> str:
    """What ``python -m export.evaluate`` prints after a validation."""
    lines = [f"accuracy on {v['images_measured']} images of {v['folder']} ({v['workers']} workers per runtime):"]
    if v["eager"] is not None:
        e = v["eager"]
        lines.append(
            f"  {'eager PyTorch':<44} top-1 {e['top1']:6.2f}%  top-5 {e['top5']:6.2f}%  {'':14}"
            f"{e['images_per_second']:8.1f} images/s"
        )
    else:
        lines.append(f"  eager PyTorch: {v['eager_note']}")
    for a in v["artifacts"]:
        if "top1" not in a:
            lines.append(f"  {a['file']:<44} FAIL: {a['summary']}")
            continue
        agrees = f"agrees {a['agreement']:6.2f}%" if "agreement" in a else ""
        verdict = "not gated" if a["passed"] is None else "ok" if a["passed"] else "FAIL: " + a["summary"]
        lines.append(
            f"  {a['file']:<44} top-1 {a['top1']:6.2f}%  top-5 {a['top5']:6.2f}%  {agrees:<14}"
            f"{a['images_per_second']:8.1f} images/s  {verdict}"
        )
    lines.append(f"report: {shown(str(out_dir / 'report.md'))}")
    return "\n".join(lines)


def _console_numbers(m: dict) -> str:
    return " ".join(
        f"{m[k]:>{w}.{p}}" if k in m else f"{'-':>{w}}"
        for k, w, p in (
            ("max_rel", 9, "2e"),
            ("min_cosine", 10, "6f"),
            ("min_centered_cosine", 9, "4f"),
            ("top1_agreement", 6, "2f"),
            ("top5_agreement", 6, "2f"),
        )
    )
