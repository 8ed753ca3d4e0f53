"""verify-arm.md: the verify-arm report as one table per output set."""

from __future__ import annotations


def _g(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def _row(model: dict, label: str, check: dict) -> str:
    m = check.get("metrics") or {}
    if check.get("passed"):
        verdict = "ok"
    else:
        verdict = "FAIL: " + "; ".join(check.get("misses") or ["not run"])
        if check.get("gating") is False:
            verdict = verdict.replace("FAIL", "miss (reported, not gating)", 1)
    cells = [
        model["file"],
        model["precision"],
        label,
        _g(m.get("max_abs")),
        _g(m.get("max_rel")),
        f"{m['min_cosine']:.6f}" if m else "-",
        f"{m['min_centered_cosine']:.4f}" if m else "-",
        _g(m.get("top1_agreement")),
        _g(m.get("top5_agreement")),
        verdict,
    ]
    return "| " + " | ".join(cells) + " |"


def render_markdown(report: dict) -> str:
    arm, x86 = report["arm64"], report["x86_64"]
    lines = [
        f"# verify-arm: LiteRT {report['litert_version']} on emulated ARM64 and on x86",
        "",
        f"- ARM64: `{arm['command']}` ({arm['tool']}), Python {arm['python']}, NumPy {arm['numpy']}, "
        f"ai-edge-litert {arm['ai_edge_litert']}",
        f"- CPU features the ARM64 guest saw (HWCAP): {' '.join(arm['cpu_features'] or []) or 'none reported'}",
        f"- x86_64: Python {x86['python']}, NumPy {x86['numpy']}, ai-edge-litert {x86['ai_edge_litert']}",
        f"- golden data: `{report['golden']['file']}` ({report['golden']['samples']} inputs, "
        f"sha256 `{report['golden']['sha256'][:16]}...`); gates: export/parity.py per precision",
        f"- fp16 arithmetic: {report['fp16_arithmetic']['how']}; gated with the fp16 tolerance"
        f"{'' if report['fp16_arithmetic']['gating'] else ', reported without failing the run'}",
        f"- result: **{'PASSED' if report['passed'] else 'FAILED'}**",
        "",
        "| model | precision | runtime | max abs | max rel | min cosine | centered cosine | top-1 | top-5 | gate |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model in report["models"]:
        lines.append(_row(model, f"ARM64 LiteRT {report['litert_version']}", model["arm64"]))
        lines.append(_row(model, f"x86 LiteRT {report['litert_version']}", model["x86_64"]))
        export = model["export_check"]
        if export.get("metrics"):
            lines.append(_row(model, f"export check ({export['runtime'].split(' Interpreter')[0] or 'x86'})", export))
        if "arm64_fp16_arithmetic" in model:
            lines.append(_row(model, "ARM64 fp16 arithmetic (fp16 gate)", model["arm64_fp16_arithmetic"]))
    lines += [
        "",
        "| model | ARM64 vs x86 LiteRT max abs | ARM64 fp16 vs default arithmetic max abs |",
        "|---|---:|---:|",
    ]
    for model in report["models"]:
        fp16 = model.get("arm64_fp16_arithmetic") or {}
        lines.append(
            f"| {model['file']} | {_g(model['arm64_vs_x86_64_max_abs'])} | "
            f"{_g(fp16.get('max_abs_vs_default_arithmetic'))} |"
        )
    lines += ["", "Timings under emulation say nothing about a phone's latency; none are reported.", ""]
    return "\n".join(lines)
