"""``python -m study.bench NAME ... --markdown FILE``: a bench's tables as a markdown file that
says what made them: the date, the commit, the machine and the command.

The tables are the ones the bench prints (its stdout, less the JSON line), so the file and the
terminal never disagree; a bench that reuses its records (``quality``, ``search``) rewrites the
file from them in seconds.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO, cast

from study.tracking.client import provenance


def machine() -> str:
    """This machine in a few words: CPU cores and model, the GPU or "no GPU"."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = (
            ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            if torch.cuda.is_available()
            else "no GPU"
        )
    except ImportError:
        gpu = "GPU unknown (no torch)"
    return f"{os.cpu_count()} CPU cores ({model}), {gpu}"


def header(command: list[str]) -> str:
    """The line that heads a generated file: when, at which commit, on what, by which command
    (``command`` as typed, e.g. ``["python", "-m", "study.bench", "speed"]``)."""
    tags = provenance(command)
    commit = tags["mlflow.source.git.commit"][:12]
    dirty = " with uncommitted changes" if tags["git.dirty"] == "true" else ""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"Made {when} at commit `{commit}`{dirty} on {machine()}, by\n\n"
        f"```bash\n{tags['command']}\n```"
    )


def to_markdown(printed: str) -> str:
    """A bench's stdout as markdown: tables and blank lines as they are, the JSON line left out,
    any other line as a list item, and a blank line wherever a table and a list meet (a list
    item right under a table would be read as part of it by some renderers)."""
    out: list[str] = []
    for line in printed.splitlines():
        if line.startswith("{"):
            continue
        if not line.strip():
            out.append("")
            continue
        table = line.startswith("|")
        if out and out[-1] and out[-1].startswith("|") != table:
            out.append("")
        out.append(line if table else f"- {line}")
    return "\n".join(out).strip("\n")


class _Tee(io.TextIOBase):
    """Writes to every stream it holds: the terminal and the kept copy."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


@contextlib.contextmanager
def _teed() -> Iterator[io.StringIO]:
    kept = io.StringIO()
    with contextlib.redirect_stdout(cast(TextIO, _Tee(sys.stdout, kept))):
        yield kept


def run_to_markdown(run: Callable[[], int], path: Path, title: str, argv: list[str]) -> int:
    """Run a bench (``run``), printing as usual; when it succeeds, write its tables to ``path``
    under ``title`` and the provenance header. A failed bench writes nothing."""
    with _teed() as kept:
        rc = run()
    if rc == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        command = ["python", "-m", "study.bench", *argv]
        text = f"# {title}\n\n{header(command)}\n\n{to_markdown(kept.getvalue())}\n"
        path.write_text(text)
        print(f"[bench] tables written to {path}", file=sys.stderr)
    return rc
