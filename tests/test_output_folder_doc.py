"""docs/output-folder.md agrees with the code: the exit-code table is
``export.errors.EXIT_CODES`` and the list of what a run may delete is what the
transaction deletes."""

import os
import re
from pathlib import Path

from casvit.checkpoint import MAX_INFLATION
from export import targets
from export.errors import EXIT_CODES
from export.manifest import CHECK_REPORTS, RECORDS, REJECTED, converter_log, log_marker
from export.outlock import lock_path
from export.txnfolder import txn_folder_name

from .helpers import ROOT, commit_set

NOTES = ROOT / "docs" / "output-folder.md"
LISTED = "<listed>"  # the doc's placeholder for the paths a manifest lists


def _section(title: str) -> str:
    text = NOTES.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_exit_code_table_is_the_code():
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", _section("Exit codes"), re.MULTILINE)
    assert {int(code): meaning for code, meaning in rows} == EXIT_CODES
    assert [int(code) for code, _ in rows] == sorted(EXIT_CODES)


def _deletable_in_the_doc() -> set[str]:
    bullets = [line for line in _section("What a run may delete").splitlines() if line.startswith("- ")]
    return {name for line in bullets for name in re.findall(r"`([^`]+)`", line.split(": ", 1)[0])}


def test_the_delete_list_names_what_the_code_may_delete():
    fixed = {*RECORDS, *CHECK_REPORTS, f"{REJECTED}/", *(converter_log(t) for t in targets.names())}
    beside = {txn_folder_name("<OUT>", "<pid>") + "/"}
    assert _deletable_in_the_doc() == fixed | beside | {LISTED}
    assert f"`{lock_path(Path('<OUT>')).name}`" in _section("What a run may delete")  # named as kept


def test_a_replacing_run_deletes_exactly_the_listed_kinds(tmp_path):
    """Behaviour behind the list: an OUT holding one entry of every deletable kind and
    look-alikes of each; a replacing run leaves only the look-alikes (and its new set)."""
    out = tmp_path / "out"
    commit_set(out, {"a.onnx": b"1"})
    commit_set(out, {"r.onnx": b"2"}, rejected=True)
    deletable = {"a.onnx", *RECORDS, f"{REJECTED}"}
    for name in CHECK_REPORTS:
        (out / name).write_text("report")
        deletable.add(name)
    for target in targets.names():
        (out / converter_log(target)).write_bytes(log_marker(target) + b"log")
        deletable.add(converter_log(target))
    lookalikes = {".staging-notes", "a.onnx.bak", "verify-arm.txt"}
    for name in lookalikes:
        (out / name).write_text("mine")
    commit_set(out, {"b.onnx": b"3"}, force=True)
    kept = set(os.listdir(out)) - {"b.onnx", *RECORDS}
    assert kept == lookalikes
    assert not any(name in kept for name in deletable)


def test_the_inflation_limit_in_the_doc_is_the_code():
    assert f"more than {MAX_INFLATION} times the file's size" in " ".join(_section("Inputs").split())
