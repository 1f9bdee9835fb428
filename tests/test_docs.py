"""The docs say what the code does: every command in a code block of the README or of docs/
starts with a known entry point and its flags are accepted (by the real parser, or by the
tool's ``--help``), every repo path and link they name exists, and every module is in the
architecture page's table."""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
#: Code block languages; only ``bash`` blocks hold commands, and every block says its language.
LANGUAGES = {"bash", "text", "bibtex", "python"}
#: Top-level repo paths that the docs may name in backticks.
REPO_DIRS = ("study/", "trainables/", "analysis/", "search_spaces/", "tests/", "docs/", ".ci/")


def _bench(argv: list[str]) -> argparse.ArgumentParser:
    from study.bench.__main__ import BENCHES, build_parser

    if argv and argv[0] not in BENCHES and argv[0] not in ("-h", "--help"):
        argv.insert(0, "speed")  # as study.bench's main does
    return build_parser()


def _run(argv: list[str]) -> argparse.ArgumentParser:
    from trainables import run
    from trainables.flags import scale_in

    return run.build_parser(scale_in(argv))


def _calibrate(argv: list[str]) -> argparse.ArgumentParser:
    from trainables import calibrate
    from trainables.config import STUDY_SCALE
    from trainables.flags import scale_in

    return calibrate.build_parser(scale_in(argv, STUDY_SCALE))


def _simple(module: str, name: str = "build_parser", *args: str) -> Callable:
    def parser(argv: list[str]) -> argparse.ArgumentParser:
        import importlib

        return getattr(importlib.import_module(module), name)(*args)

    return parser


#: ``python -m MODULE``: the parser each entry point parses its argv with.
PARSERS: dict[str, Callable[[list[str]], argparse.ArgumentParser]] = {
    "study.launch": _simple("study.config"),
    "study.bench": _bench,
    "study.report": _simple("analysis.report", "build_parser", "python -m study.report"),
    "study.docs": _simple("study.docs"),
    "analysis.report": _simple("analysis.report"),
    "trainables.run": _run,
    "trainables.calibrate": _calibrate,
    "trainables.anonymize": _simple("trainables.anonymize"),
    "trainables.data": _simple("trainables.data.datasets.check"),
}
#: Other tools, whose flags are checked against their ``--help`` (when installed here).
HELPED = {("mlflow", "ui"), ("mlflow", "server"), ("optuna-dashboard",), ("ray", "start")}
#: Shell and system commands of setup steps: known, their flags not checked.
SYSTEM = {"export", "cd", "git", "bash", "apt-get", "mkdir", "mount", "echo", "exportfs"}


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


def commands(block: str) -> list[str]:
    """The command lines of a bash block: continuations joined, comments and blank lines out."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(shlex.join(words))
    return out


@functools.cache
def _help(tool: tuple[str, ...]) -> str | None:
    exe = shutil.which(tool[0]) or (Path(sys.executable).parent / tool[0])
    if not Path(exe).exists():
        return None
    r = subprocess.run([str(exe), *tool[1:], "--help"], capture_output=True, text=True, timeout=120)
    return r.stdout + r.stderr


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", text, flags=re.M))


def check_command(command: str) -> str:
    """'' when ``command`` starts with a known entry point whose parser accepts its flags; else
    what is wrong."""
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before a command
        words = words[1:]
    if not words:
        return ""
    if words[:2] == ["python", "-m"] and len(words) > 2:
        module, argv = words[2], words[3:]
        if module not in PARSERS:
            return f"{command}: python -m {module} is not an entry point of this project"
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                PARSERS[module](argv).parse_args(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                return f"{command}: {err.getvalue().strip().splitlines()[-1]}"
        return ""
    if words[0] == "make":
        missing = [t for t in words[1:] if not t.startswith("-") and t not in _make_targets()]
        return f"{command}: no make target {missing}" if missing else ""
    for tool in HELPED:
        if tuple(words[: len(tool)]) == tool:
            text = _help(tool)
            if text is None:
                return ""  # not installed here (ray's CLI is): its flags cannot be checked
            flags = [w.split("=")[0] for w in words if w.startswith("--")]
            unknown = [f for f in flags if not re.search(rf"{re.escape(f)}(?![\w-])", text)]
            return f"{command}: {' '.join(tool)} has no flag {unknown}" if unknown else ""
    if words[0] in SYSTEM:
        return ""
    return f"{command}: {words[0]} is not a known entry point"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def check_links(page: Path) -> list[str]:
    """The links and backticked repo paths of ``page`` that name nothing in the repo."""
    text = page.read_text()
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{page.name}: link to {target}: no such file")
        elif anchor and dest.suffix == ".md":
            heads = re.findall(r"^#+ (.+)$", dest.read_text(), flags=re.M)
            if anchor not in {_slug(h) for h in heads}:
                bad.append(f"{page.name}: link to {target}: no such heading")
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for token in re.findall(r"`([^`\s]+)`", prose):
        looks_like_path = token.endswith("/") or re.search(r"\.\w+$", token)
        if (token.startswith(REPO_DIRS) and looks_like_path) or token in (
            "Makefile",
            "pyproject.toml",
        ):
            path = token.split("::")[0].rstrip(",.")
            if not (ROOT / path).exists():
                bad.append(f"{page.name}: `{token}`: no such path in the repo")
    return bad


def test_every_documented_command_is_accepted_by_its_parser():
    problems, n = [], 0
    for page in PAGES:
        for lang, body in code_blocks(page.read_text()):
            assert lang in LANGUAGES, f"{page.name}: a code block without a known language"
            if lang != "bash":
                continue
            for command in commands(body):
                n += 1
                if msg := check_command(command):
                    problems.append(f"{page.relative_to(ROOT)}: {msg}")
    assert n > 40  # the docs do show commands
    assert not problems, "\n".join(problems)


def test_the_check_fails_on_a_renamed_or_unknown_flag_and_an_unknown_entry_point():
    assert check_command("python -m study.launch --space smoke --seeds 3") == ""
    assert "unrecognized arguments: --seedz" in check_command("python -m study.launch --seedz 3")
    assert "--seed" in check_command("python -m study.launch --seed 3")  # no abbreviations
    assert "unrecognized arguments: qualty" in check_command("python -m study.bench qualty")
    assert "required: --output" in check_command("python -m trainables.anonymize --weights a "
                                                 "--input b --out c")  # fmt: skip
    assert "not an entry point" in check_command("python -m study.lunch --space smoke")
    assert "no make target" in check_command("make runn")
    assert "not a known entry point" in check_command("pip install penalty-anon-study")
    if _help(("mlflow", "ui")) is not None:
        assert "has no flag" in check_command("mlflow ui --backend-store sqlite:///x.db")


def test_every_link_and_repo_path_in_the_docs_exists():
    problems = [p for page in PAGES for p in check_links(page)]
    assert not problems, "\n".join(problems)


def test_every_module_is_in_the_architecture_table():
    table = (ROOT / "docs" / "architecture.md").read_text()
    modules = [
        p.relative_to(ROOT).as_posix()
        for pkg in ("study", "trainables", "analysis")
        for p in (ROOT / pkg).rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    ]
    missing = [m for m in modules if f"`{m}`" not in table]
    assert not missing, f"add to docs/architecture.md's layout table: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_each_page_says_what_it_is_for(page):
    """A title, then at once what the page is for (a generated page: what made it)."""
    lines = [ln for ln in page.read_text().splitlines() if ln.strip()]
    assert lines[0].startswith("# "), page
    assert page == ROOT / "README.md" or re.search(
        r"(?i)(this page is for|^for )|^Made |^Ran ", " ".join(lines[1:4])
    ), f"{page.name}: say what the page is for right under its title"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_bytes()) < 12_000


def test_the_figures_page_names_each_figure_s_test_and_what_made_it(tmp_path):
    """make reliability's page (tests/study_helpers.write_figures_page): the provenance line
    under the title, a failed session said so, one row per figure with its test."""
    from tests.study_helpers import write_figures_page

    rows = [
        {"figure": "seconds to restart | the server", "value": 5.1, "test": "tests/t.py::a"},
        {"figure": "writers held", "value": 64, "test": "tests/t.py::b[sqlite]"},
    ]
    page = tmp_path / "reliability.md"
    write_figures_page(page, rows, 1)
    lines = [ln for ln in page.read_text().splitlines() if ln.strip()]
    assert lines[0].startswith("# ") and lines[1].startswith("Made ") and "commit `" in lines[1]
    assert "make reliability" in page.read_text() and "pytest's exit status 1" in page.read_text()
    table = [ln for ln in lines if ln.startswith("| ")]
    assert len(table) == 2 + len(rows)
    assert table[2] == r"| seconds to restart \| the server | 5.1 | `tests/t.py::a` |"
