"""``python -m study.docs --experiment penalty_grid``: the docs' pictures and the study's
results page, remade from a finished study's records.

- ``report.png``: the top of the study's ``report.html`` (the recommendation and the front) in
  headless Chromium, and ``report-metrics-vs-B.png``, the report's own plot of the metrics
  against B;
- ``mlflow-runs.png``: the MLflow UI's runs table of the study, served from its store by a
  tracking server on 127.0.0.1 that this command starts and stops;
- ``frames.png``: test clips of the study's data, raw, then through the anonymizer of the
  trials at two bounds B (at the λ given), as the user would apply them;
- ``--results FILE`` (``docs/results/EXPERIMENT.md``): the study's ``summary.md``, headed by
  when it ran, how long it took, its commit, the machine and its command, from its parent run.

Nothing is downloaded: the study's store, artifacts and data are all local.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainables.log import usage_error

#: Headless Chromium, as the tests drive it: no network of its own, a throwaway profile.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


class PictureError(ValueError):
    """A study, a run or a tool that the pictures need is missing; the message names it."""


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise PictureError("Debian's chromium is needed for the screenshots: `make chromium`")
    return exe


def screenshot(url: str, out: Path, size: tuple[int, int], wait_ms: int = 30000) -> Path:
    """``url`` rendered by headless Chromium at ``size`` (width, height) into ``out`` (PNG)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={wait_ms}", f"--window-size={size[0]},{size[1]}",
             f"--screenshot={out.resolve()}", url],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    if not out.is_file():
        raise PictureError(f"chromium wrote no screenshot of {url}: {r.stderr[-1000:]}")
    return out


@dataclass(frozen=True)
class Trial:
    run_id: str
    B: float
    lam: float


def newest_parent(client: Any, exp_id: str) -> Any:
    """The experiment's newest study parent run (the study the pictures and the page show)."""
    parents = client.search_runs(
        [exp_id], "tags.`study.role` = 'parent'", order_by=["attributes.start_time DESC"]
    )
    if not parents:
        raise PictureError("the experiment holds no study parent run")
    return parents[0]


def penalty_trials(client: Any, exp_id: str, parent_id: str) -> list[Trial]:
    """The learned trials of the study ``parent_id``, with their B and λ."""
    runs = client.search_runs(
        [exp_id],
        f"tags.`study.role` = 'trial' and tags.`mlflow.parentRunId` = '{parent_id}'",
        max_results=10000,
    )
    out = []
    for r in runs:
        p = r.data.params
        if r.data.tags.get("anonymizer.kind") == "learned" and "B" in p and "lam" in p:
            out.append(Trial(r.info.run_id, float(p["B"]), float(p["lam"])))
    return out


def pick(trials: list[Trial], bound: float, lam: float) -> Trial:
    """The trial at (``bound``, ``lam``); an error listing what the study ran otherwise."""
    for t in trials:
        if np.isclose(t.B, bound) and np.isclose(t.lam, lam):
            return t
    ran = sorted({(t.B, t.lam) for t in trials})
    raise PictureError(
        f"--bounds {bound:g} at --lam {lam:g}: no such trial; the study ran (B, λ) in {ran}"
    )


def trials_table(uri: str, exp_id: str) -> str:
    """The runs table of the study's trials (not its parent run, which folds them away), the
    most private first: the view a user opens to compare trials."""
    from urllib.parse import quote

    from study.tracking import client as tracking

    trials = quote("tags.`study.role` = 'trial'")
    return (
        tracking.runs_url(uri, exp_id)
        + f"&searchFilter={trials}&orderByKey={quote('metrics.`cmap`')}&orderByAsc=true"
    )


def _font(size: int) -> Any:
    """A font with λ in it (Debian's DejaVu, which chromium pulls in), else Pillow's own."""
    from PIL import ImageFont

    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def strip(rows: list[tuple[str, np.ndarray]], scale: int) -> Any:
    """One labelled row per (label, frames (N, H, W, 3) uint8), each frame scaled up ``scale``
    times (nearest), as one PIL image."""
    from PIL import Image, ImageDraw

    n, h, w = rows[0][1].shape[:3]
    label_w, gap, font = 190, 4, _font(15)
    img = Image.new(
        "RGB", (label_w + n * (w * scale + gap), len(rows) * (h * scale + gap)), "white"
    )
    draw = ImageDraw.Draw(img)
    for i, (label, frames) in enumerate(rows):
        y = i * (h * scale + gap)
        draw.text((6, y + h * scale // 2 - 8), label, fill="black", font=font)
        for j, f in enumerate(frames):
            tile = Image.fromarray(f).resize((w * scale, h * scale), Image.Resampling.NEAREST)
            img.paste(tile, (label_w + j * (w * scale + gap), y))
    return img


def frame_strip(client: Any, trials: list[Trial], bounds: list[float], lam: float, out: Path,
                clips: int) -> Path:  # fmt: skip
    """Raw test clips of the study's data (the first frame of each), then through the
    anonymizer of the trial at each bound."""
    import torch

    from trainables.anonymize import apply_frames, load_anonymizer
    from trainables.config import from_dict
    from trainables.data.load import load_data

    chosen = [pick(trials, b, lam) for b in bounds]
    with tempfile.TemporaryDirectory() as d:
        anons = []
        for t in chosen:
            folder = Path(d) / t.run_id
            for name in ("anonymizer.pt", "config.json"):
                client.download_artifacts(t.run_id, name, str(folder))
            anons.append(load_anonymizer(folder / "anonymizer.pt", folder / "config.json"))
        cfg = from_dict(json.loads((folder / "config.json").read_text()))
    data = load_data(cfg, lambda m: print(m, file=sys.stderr))
    test = data.action_test.clips
    if not isinstance(test, torch.Tensor):
        raise PictureError("the frame strip needs in-memory clips (the synthetic benchmark)")
    # One clip of each action class, first frame: what a viewer can compare across rows.
    labels = data.action_test.labels
    first = [int(torch.nonzero(labels == c)[0]) for c in sorted(set(labels.tolist()))][:clips]
    raw = test[first, :, 0].permute(0, 2, 3, 1).contiguous().numpy()
    rows = [("raw", raw)]
    device = torch.device("cpu")
    for t, anon in zip(chosen, anons, strict=True):
        rows.append((f"f_A: B = {t.B:g}, λ = {t.lam:g}", apply_frames(anon, raw, device)))
    out.parent.mkdir(parents=True, exist_ok=True)
    strip(rows, scale=4).save(out)
    return out


def study_page(parent: Any, summary: Path, out: Path) -> Path:
    """The study's summary.md under a header that its parent run's records give: its start and
    wall time, its commit and its command, and this machine."""
    from study.bench.markdown import machine

    info, tags = parent.info, parent.data.tags
    if info.end_time is None:
        raise PictureError(f"the study's parent run {info.run_id} has not finished")
    wall = (info.end_time - info.start_time) / 60_000
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(info.start_time / 1000))
    dirty = " with uncommitted changes" if tags.get("git.dirty") == "true" else ""
    body = summary.read_text().split("\n", 1)[1].lstrip("\n")  # its own title goes
    est = parent.data.metrics.get("study/estimated_seconds")
    estimate = (
        f"; the dry run's estimate at launch was {est / 60:.1f} min "
        f"({tags.get('study.estimate_source', 'its figures')})"
        if est is not None
        else "; no estimate was recorded at launch"
    )
    head = (
        f"# The study `{parent.info.run_name}`\n\n"
        f"Ran {started} for **{wall:.1f} min** (the launcher's wall time, from its parent "
        f"run{estimate}), "
        f"at commit `{tags.get('mlflow.source.git.commit', 'unknown')[:12]}`{dirty}, on "
        f"{machine()}, by\n\n```bash\n{_as_typed(tags.get('command', ''))}\n```\n\n"
        f"Page written by `python -m study.docs --experiment {parent.info.run_name}` from the "
        "study's records.\n\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + body)
    return out


def _as_typed(command: str) -> str:
    """A recorded command line as the user typed it: ``python -m ...`` for the interpreter."""
    parts = command.split(" ", 1)
    return (
        "python" + (" " + parts[1] if len(parts) > 1 else "")
        if parts[0].endswith(("python", "python3"))
        else command
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.docs",
        description="Remake the docs' pictures from a finished study (the report, the MLflow "
        "runs table, a strip of frames: raw, then f_A at two bounds) and its results page.",
        allow_abbrev=False,
    )
    p.add_argument("--experiment", default="penalty_grid", help="the study's experiment name")
    p.add_argument("--study-dir", default="studies", help="root of the studies")
    p.add_argument("--out", default="docs/img", help="folder of the pictures")
    p.add_argument("--bounds", default="0.3,0.5", help="the two B of the frame strip")
    p.add_argument("--lam", type=float, default=100.0, help="the λ of the frame strip's trials")
    p.add_argument("--clips", type=int, default=8, help="clips (columns) of the frame strip")
    p.add_argument(
        "--results",
        default="",
        metavar="FILE",
        help="the study's results page (default: docs/results/EXPERIMENT.md; 'none': skip it)",
    )
    p.add_argument("--no-pictures", action="store_true", help="write the results page only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = Path(args.study_dir).resolve() / args.experiment
    out = Path(args.out)
    try:
        bounds = [float(b) for b in args.bounds.split(",")]
        if len(bounds) != 2:
            raise PictureError(f"--bounds takes two values, got {args.bounds!r}")
        report = root / "report" / "report.html"
        if not (root / "mlflow.db").is_file() or not report.is_file():
            raise PictureError(
                f"no finished study at {root} (mlflow.db and report/report.html): run "
                f"`python -m study.launch --space {args.experiment}` first, or give --study-dir"
            )
        chromium()
    except ValueError as e:  # PictureError included
        return usage_error(e)
    from study.tracking import client as tracking
    from study.tracking.server import MlflowServer

    results = Path(args.results or f"docs/results/{args.experiment}.md")
    written = []
    if not args.no_pictures:
        written.append(screenshot(report.as_uri(), out / "report.png", (1280, 1700)))
        plot = root / "report" / "metrics_vs_B.png"
        if plot.is_file():
            written.append(Path(shutil.copyfile(plot, out / "report-metrics-vs-B.png")))
    server = MlflowServer(root).start()
    try:
        c = tracking.client(server.uri)
        exp = c.get_experiment_by_name(args.experiment)
        if exp is None:
            return usage_error(PictureError(f"no experiment {args.experiment!r} in {root}"))
        parent = newest_parent(c, exp.experiment_id)
        if args.results != "none":
            written.append(study_page(parent, root / "report" / "summary.md", results))
        if not args.no_pictures:
            written.append(
                screenshot(trials_table(server.uri, exp.experiment_id), out / "mlflow-runs.png",
                           (1900, 1000))
            )  # fmt: skip
            trials = penalty_trials(c, exp.experiment_id, parent.info.run_id)
            written.append(frame_strip(c, trials, bounds, args.lam, out / "frames.png", args.clips))
    except ValueError as e:
        return usage_error(e)
    finally:
        server.stop()
    for path in written:
        print(f"[pictures] {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
