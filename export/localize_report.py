"""The per-layer localization and the fallbacks of a run, as the report shows them
(``export.localize`` computes them, ``export.report`` holds them): ``localization.png``
(error against depth, one line per artifact, drawn before the report is built so the
manifest lists it) and the report.md section and console lines ``export.render`` puts
in its renderings."""

from __future__ import annotations

from pathlib import Path

PICTURE = "localization.png"


def localized(artifacts: list[dict]) -> list[tuple[str, dict]]:
    """(label, localization) of every localized artifact (report.json entries), the
    repaired one after the one it repaired."""
    out = []
    for a in artifacts:
        if a.get("localization", {}).get("matched"):
            out.append((a["name"], a["localization"]))
        after = a.get("fallback", {}).get("localization_after")
        if after and after.get("matched"):
            out.append((f"{a['name']} (fallback)", after))
    return out


def write_picture(folder: Path, artifacts: list[dict]) -> str | None:
    """``localization.png`` in ``folder``: max rel and 1 - cosine against depth, one line
    per localized artifact; returns its file name (None when nothing was localized)."""
    lines = localized(artifacts)
    if not lines:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [layer["name"] for layer in lines[0][1]["layers"]]
    figure, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.28 * len(names) + 3), 7.5), sharex=True)
    for label, loc in lines:
        depth = [layer["depth"] for layer in loc["layers"]]
        (line,) = axes[0].plot(depth, [max(layer["max_rel"], 1e-12) for layer in loc["layers"]], marker="o", ms=3)
        line.set_label(label)
        color = line.get_color()
        axes[1].plot(
            depth, [max(1.0 - layer["min_cosine"], 1e-12) for layer in loc["layers"]], marker="o", ms=3, c=color
        )
        axes[1].plot(depth, [1.0 - layer["min_cosine_budget"] for layer in loc["layers"]], ls="--", lw=0.8, c=color)
        if loc["layers"][0]["max_rel_budget"] is not None:
            axes[0].plot(depth, [layer["max_rel_budget"] for layer in loc["layers"]], ls="--", lw=0.8, c=color)
        first = loc.get("first_over")
        if first:
            d = next(layer["depth"] for layer in loc["layers"] if layer["name"] == first)
            axes[1].axvline(d, color=color, ls=":", lw=1)
    axes[0].set_ylabel("max rel vs eager")
    axes[1].set_ylabel("1 - min cosine vs eager")
    for axis in axes:
        axis.set_yscale("log")
        axis.grid(True, which="major", alpha=0.3)
    axes[1].set_xticks(range(1, len(names) + 1), names, rotation=70, fontsize=7)
    axes[0].legend(fontsize=7)
    axes[0].set_title(
        "error against eager by depth (dashed: depth-scaled budget; dotted: first layer over it)", fontsize=10
    )
    figure.tight_layout()
    figure.savefig(folder / PICTURE, dpi=110, metadata={"Software": None})
    plt.close(figure)
    return PICTURE


def markdown(report: dict) -> list[str]:
    """report.md lines: the picture, per localized artifact its table, and what each
    fallback kept in float."""
    lines = localized(report["artifacts"])
    unmatched = [
        (a["name"], a["localization"]) for a in report["artifacts"] if a.get("localization", {}).get("matched") is False
    ]
    fallbacks = [(a["name"], a["fallback"]) for a in report["artifacts"] if a.get("fallback")]
    if not lines and not unmatched and not fallbacks:
        return []
    out = [
        "## Per-layer localization",
        "",
        "Eager deploy model against each artifact on the parity inputs, at every block boundary; budget: the "
        "artifact's parity tolerance scaled by sqrt(depth / layers) (export/localize.py).",
        "",
    ]
    if report.get("localization_picture"):
        out += [f"![per-layer error against depth]({report['localization_picture']['file']})", ""]
    out += [f"- {name}: not localized: {loc['summary']}" for name, loc in unmatched]
    for name, loc in lines:
        out += [
            "",
            f"### {name}: {loc['summary']}",
            "",
            f"- tensors from: {loc['runtime']}",
            "",
            "| depth | layer | module | max rel | budget | min cosine | budget | |",
            "|---:|---|---|---:|---:|---:|---:|---|",
        ]
        for layer in loc["layers"]:
            rel_budget = "-" if layer["max_rel_budget"] is None else f"{layer['max_rel_budget']:.3g}"
            out.append(
                f"| {layer['depth']} | {layer['name']} | `{layer['module']}` | {layer['max_rel']:.3g} | {rel_budget} "
                f"| {layer['min_cosine']:.6f} | {layer['min_cosine_budget']:.6f} "
                f"| {'**over**' if layer['over'] else ''} |"
            )
    for name, fallback in fallbacks:
        out += ["", *fallback_markdown(name, fallback)]
    return [*out, ""]


def fallback_markdown(name: str, fallback: dict) -> list[str]:
    """What a fallback kept in float, its cost and the metrics before and after."""
    verdict = "passed every check" if fallback["passed"] else f"did not pass: stopped, {fallback['stopped']}"
    out = [
        f"### {name}: int8 fallback {verdict}",
        "",
        f"- kept in float: {len(fallback['kept_in_float'])} tensor(s), {fallback.get('float_mac_share', 0):.1%} of the "
        f"conv MACs (budget {fallback['float_mac_budget']:.0%}), in {fallback.get('seconds', 0):.1f} s",
    ]
    if fallback.get("latency"):
        lat = fallback["latency"]
        out.append(
            f"- latency: {lat['int8_ms']:.3f} ms plain int8, {lat['fallback_ms']:.3f} ms with the fallback "
            f"(x{lat['ratio']:.2f}; {lat['method']})"
        )
    out += ["", "| region | module | operators in float | MACs | tensor |", "|---|---|---|---:|---|"]
    out += [
        f"| {k['region']} | `{k['module']}` | {', '.join(k['operators'])} | {k['macs']} | `{k['tensor']}` |"
        for k in fallback["kept_in_float"]
    ]
    keys = [
        k for k in ("min_cosine", "min_centered_cosine", "top1_agreement", "max_rel", "top1") if k in fallback["before"]
    ]
    out += ["", "| | passed | " + " | ".join(keys) + " |", "|---|---|" + "---:|" * len(keys)]
    for label in ("before", "after"):
        if label in fallback:
            m = fallback[label]
            out.append(
                f"| {label} | {m['passed']} | " + " | ".join(f"{m.get(k, float('nan')):.6g}" for k in keys) + " |"
            )
    return out


def console_lines(report: dict) -> list[str]:
    """Under the CLI's table: one line per localized artifact and per fallback."""
    lines = [f"{name}: {loc['summary']}" for name, loc in localized(report["artifacts"])]
    for a in report["artifacts"]:
        f = a.get("fallback")
        if f:
            kept = ", ".join(k["region"] for k in f["kept_in_float"]) or "nothing"
            cost = f", latency x{f['latency']['ratio']:.2f}" if f.get("latency") else ""
            lines.append(
                f"{a['name']}: int8 fallback {'passed' if f['passed'] else 'did not pass (' + f['stopped'] + ')'}: "
                f"{len(f['kept_in_float'])} tensor(s) in float in {kept}, {f.get('float_mac_share', 0):.1%} of the "
                f"conv MACs{cost}"
            )
    return lines
