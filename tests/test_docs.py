"""The user documentation runs: every ```bash and ```python block of README.md and
docs/*.md is executed, in order, each document in its own fresh working folder that
looks like a checkout (the repository's .venv, Makefile, pyproject.toml and tests/
linked in, .venv/bin first on PATH), so `make export ...` and
`.venv/bin/python -m export ...` run as a user types them and write their `out/`
there. Documents run side by side, one per core. A block is skipped only when the
line right before it says why: ``<!-- not run: REASON -->``; a skipped block must
still parse (bash -n, compile) and every `make` line of it must name real targets
(make -n).

docs/notes-*.md are working notes that the lead folds into these pages; they are not
user documentation and are not run here."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("notes-"))]
SHELL, PYTHON = ("bash", "sh", "shell"), ("python",)
README_MAX_LINES = 300
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->$")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^`\s]*)")
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"  # written by `make setup`
# What a snippet may use from the checkout; everything else it writes stays in its own folder.
LINKED = (".venv", "Makefile", "tests")
BLOCK_TIMEOUT = 900


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_run: str | None  # the stated reason, for a block that is not run here

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.language in SHELL + PYTHON


def blocks(document: Path) -> list[Block]:
    """The fenced blocks of a markdown file, with the not-run reason stated right before each."""
    found, lines, i = [], document.read_text().splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i].strip())
        if not opening:
            i += 1
            continue
        fence, start = opening["fence"], i
        previous = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(previous)
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            i += 1
        code = "\n".join(lines[start + 1 : i]) + "\n"
        found.append(Block(document, start + 1, opening["info"].lower(), code, marker["reason"] if marker else None))
        i += 1
    return found


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in blocks(document)]


def test_readme_is_short():
    count = len((ROOT / "README.md").read_text().splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines; the reference belongs in docs/"


def test_every_block_names_its_language_and_every_skip_its_reason():
    for block in all_blocks():
        assert block.language, f"{block.where}: a fenced block without a language (bash, python, json, text, ...)"
        if block.not_run is not None:
            assert block.runnable, f"{block.where}: a not-run marker before a {block.language} block, which never runs"
            assert len(block.not_run) >= 10, f"{block.where}: say why the block is not run here"


def anchors(document: Path) -> set[str]:
    """The heading anchors of a markdown file, as GitHub makes them."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", document.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_local_links_lead_somewhere():
    for document in DOCUMENTS:
        for match in LINK.finditer(document.read_text()):
            path, _, anchor = match["target"].partition("#")
            if re.match(r"[a-z]+:", path):
                continue
            target = (document.parent / path) if path else document
            where = f"{document.relative_to(ROOT)}: link {match['target']}"
            assert target.exists(), f"{where}: no such file"
            if anchor and target.suffix == ".md":
                assert anchor in anchors(target), f"{where}: no such heading"


def _make_lines(code: str) -> list[list[str]]:
    """The `make ...` commands of a shell block, as argument lists."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["make"]:
            commands.append(words)
    return commands


def test_skipped_blocks_still_parse():
    skipped = [b for b in all_blocks() if b.not_run is not None]
    for block in skipped:
        if block.language in PYTHON:
            compile(block.code, block.where, "exec")
            continue
        checked = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
        assert checked.returncode == 0, f"{block.where}: {checked.stderr}"
        for words in _make_lines(block.code):
            dry = subprocess.run(
                ["make", "-n", "-o", ".venv/.installed", *words[1:]], cwd=ROOT, capture_output=True, text=True
            )
            assert dry.returncode == 0, f"{block.where}: {' '.join(words)}: {dry.stderr.strip()}"


def workspace(folder: Path) -> dict[str, str]:
    """A folder that looks like a checkout to the snippets; returns their environment."""
    folder.mkdir()
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name)
    # A copy no newer than the venv's stamp: make never reinstalls the shared .venv from here.
    shutil.copyfile(ROOT / "pyproject.toml", folder / "pyproject.toml")
    os.utime(folder / "pyproject.toml", (STAMP.stat().st_mtime - 1,) * 2)
    env = dict(os.environ)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_block(block: Block, folder: Path, env: dict[str, str]) -> None:
    if block.language in PYTHON:
        command = [str(VENV / "bin" / "python"), "-c", block.code]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    assert done.returncode == 0, (
        f"{block.where} ({block.language}) exited with {done.returncode}\n--- code\n{block.code}"
        f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}"
    )


def to_run(document: Path) -> list[Block]:
    return [b for b in blocks(document) if b.runnable and b.not_run is None]


def run_document(document: Path, folder: Path) -> None:
    """Every runnable block of ``document``, in order, in one fresh workspace."""
    env = workspace(folder)
    for block in to_run(document):
        run_block(block, folder, env)


RUNNABLE = [d for d in DOCUMENTS if to_run(d)]


@pytest.fixture(scope="module")
def document_runs(request, tmp_path_factory):
    """The selected documents, started together and run as many at a time as there are
    cores (they are independent, and most of their time is single-threaded
    conversion): document -> future."""
    if not STAMP.is_file():
        pytest.skip("no .venv made by `make setup` in this checkout")
    selected = {
        item.callspec.params["document"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_snippets_run" and item.module.__name__ == __name__
    }
    chosen = [d for d in RUNNABLE if d in selected]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {d: pool.submit(run_document, d, tmp_path_factory.mktemp(d.stem) / "checkout") for d in chosen}
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.slow
@pytest.mark.parametrize("document", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_snippets_run(document, document_runs):
    document_runs[document].result()  # the failing block's assertion, re-raised here
