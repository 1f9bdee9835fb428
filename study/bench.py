"""``python -m study.bench --scale paper``: how fast one trial computes on this device.
``python -m study.bench --quality --seeds 3``: whether the benchmark shows the trade-off
(:mod:`study.quality`).
``python -m study.bench --search --seeds 3``: whether the search finds the grid's front with
fewer trials (:mod:`study.searchbench`).
``python -m study.bench --ratios``: the platform's overhead, the concurrency speed-up, the
saving of shared stages, and one trial's seconds per stage (:mod:`study.ratios`).

The speed bench prints three figures, each on its own line and then together as one JSON object:

- the clips/s of one minimax step (f_A, f_T and f_B forward and backward, both steps) at the
  scale's models, geometry and batch sizes, on random inputs;
- the clips/s of data loading alone: streaming training clips (decoding, clip sampling, crop
  and resize) of videos written for the purpose (320x240, 64 frames, like UCF101's) in
  persistent DataLoader workers, as a trial reads them;
- peak memory: the GPU's peak allocation on CUDA, the process's peak RSS otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trainables.config import SCALES
from trainables.log import usage_error


def log(msg: str) -> None:
    """Progress, on stderr: stdout is the bench's figures."""
    print(msg, file=sys.stderr, flush=True)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_step(cfg: Any, steps: int, warmup: int, log: Any) -> dict[str, float]:
    """Seconds and clips/s of ``steps`` minimax steps after ``warmup`` untimed ones."""
    import torch

    from trainables.game.device import Runtime, resolve_device
    from trainables.game.train import make_minimax_optimizers, minimax_step
    from trainables.models.action_models import build_action_model
    from trainables.models.build import anonymizer_for
    from trainables.models.privacy_models import build_privacy_model

    device = resolve_device(cfg.device)
    rt = Runtime(device=device, amp=cfg.amp, gen=torch.Generator().manual_seed(0))
    anon = rt.place(anonymizer_for(cfg, 101), channels_last=True)
    f_t = rt.place(
        build_action_model(cfg.action_model, num_classes=101, frames=cfg.frames, size=cfg.size)
    )
    f_b = rt.place(
        build_privacy_model(cfg.privacy_model, head="simclr", num_outputs=128), channels_last=True
    )
    opts = make_minimax_optimizers(anon, f_t, f_b, cfg)
    x = torch.rand(cfg.batch_size, 3, cfg.frames, cfg.size, cfg.size, device=device)
    y = torch.randint(0, 101, (cfg.batch_size,), device=device)
    p1 = torch.rand(cfg.privacy_batch_size, 3, cfg.size, cfg.size, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup):
        minimax_step(anon, f_t, f_b, x, y, p1, None, cfg, rt, opts)
        log(f"[bench] warm-up step {i + 1}/{warmup}")
    _sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        minimax_step(anon, f_t, f_b, x, y, p1, None, cfg, rt, opts)
        log(f"[bench] timed step {i + 1}/{steps}")
    _sync(device)
    sec = (time.perf_counter() - t0) / steps
    out = {"step_seconds": sec, "step_clips_per_s": cfg.batch_size / sec}
    if device.type == "cuda":
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def bench_loading(cfg: Any, videos: int, workers: int, pin: bool, log: Any) -> dict[str, float]:
    """Clips/s of streaming training clips from freshly written AVI videos, as a trial reads
    them: batches decoded in persistent DataLoader workers (pinned on CUDA). Two epochs: the
    first starts the workers, the second is the steady state reported."""
    import torch

    from trainables.data.datasets.encode import write_video
    from trainables.data.datasets.loading import ClipSpec
    from trainables.data.datasets.stream import ClipStream, probe_videos
    from trainables.data.sets import batches

    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(videos):
            paths.append(Path(d) / f"v{i}.avi")
            write_video(paths[-1], frames=64, h=240, w=320, seed=i)
        kept, counts, _ = probe_videos(paths, workers=workers, what="bench", log=lambda m: None)
        spec = ClipSpec(cfg.frames, cfg.skip, cfg.size, cfg.crop, cfg.test_clips)
        stream = ClipStream(
            [paths[i] for i in kept], counts, spec, train=True, seed=0, workers=workers,
            what="bench", log=log,
        )  # fmt: skip
        gen = torch.Generator().manual_seed(0)
        seconds = []
        for epoch in (1, 2):
            t0 = time.perf_counter()
            n = sum(
                len(idx)
                for idx, _ in stream.batches(
                    batches(len(stream), cfg.batch_size, gen), epoch=epoch, pin=pin
                )
            )
            seconds.append(time.perf_counter() - t0)
            log(
                f"[bench] epoch {epoch}: streamed {n} clips in {seconds[-1]:.2f}s ({workers} workers)"
            )
    return {
        "load_clips_per_s": n / seconds[1],
        "load_first_epoch_clips_per_s": n / seconds[0],
        "load_workers": workers,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m study.bench", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    p.add_argument("--scale", default=None, choices=sorted(SCALES),
                   help="scale (default: paper for speed, default for --quality)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--steps", type=int, default=0, help="timed steps (0: 5 on CUDA, 1 on CPU)")
    p.add_argument("--warmup", type=int, default=-1, help="untimed steps (-1: 2 on CUDA, 0 CPU)")
    p.add_argument("--videos", type=int, default=16, help="videos decoded by the loading bench")
    p.add_argument("--workers", type=int, default=-1, help="loading workers (-1: the scale's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="trial config override, e.g. --set batch_size=4")  # fmt: skip
    q = p.add_argument_group("quality (--quality)")
    q.add_argument(
        "--quality",
        action="store_true",
        help="run the quality bench instead: raw reference, a B sweep at lambda=1 "
        "and lambda=0 at B=0.1, per seed (scale default unless --scale is given)",
    )
    q.add_argument("--seeds", type=int, default=3, help="seeds (model and data seed both)")
    q.add_argument("--bounds", default="", help="the B sweep at --lam (default: the built-in "
                   "spaces' bounds)")  # fmt: skip
    q.add_argument("--lam", type=float, default=0.0,
                   help="the binding lambda of the B sweep (default: the built-in spaces'); the "
                   "ablation compares it with lambda=0 at B=0.1")  # fmt: skip
    q.add_argument("--eval-seed", type=int, default=0, help="evaluation seed of every point")
    q.add_argument("--records", default="bench-quality.jsonl",
                   help="JSON-lines file of finished rows: appended to, and reused on a rerun "
                   "('' to keep nothing)")  # fmt: skip
    s = p.add_argument_group("search (--search; --seeds is the number of search seeds)")
    s.add_argument("--search", action="store_true",
                   help="run the search bench instead: penalty_grid once, then pareto_search "
                   "under each search seed, and the hypervolume ratio (scale default unless "
                   "--scale is given)")  # fmt: skip
    s.add_argument("--samplers", default="tpe", help="comma list of samplers (tpe,gp,nsga2,random)")
    s.add_argument("--b-scales", default="linear", help="comma list: linear, log")
    s.add_argument("--budget", type=int, default=12, help="trials per search")
    s.add_argument("--concurrency", type=int, default=2,
                   help="trials a search proposes before it hears back (as Ray runs them)")  # fmt: skip
    s.add_argument("--search-records", default="bench-search.jsonl",
                   help="JSON-lines file of finished trials, reused on a rerun ('' to keep none)")  # fmt: skip
    r = p.add_argument_group("ratios (--ratios; --steps is the bare loop's steps, 60 unless given)")
    r.add_argument("--ratios", action="store_true",
                   help="run the ratios bench instead: a real study of --trials trials, "
                   "--concurrency at a time, the same trials in this process, a bare game loop "
                   "(scale default unless --scale is given)")  # fmt: skip
    r.add_argument("--trials", type=int, default=4, help="trials of the timed study")
    r.add_argument("--sharing-scale", default="smoke",
                   help="time penalty_grid at this scale with and without shared stages and "
                   "reuse ('' or none: only estimate the saving at --scale)")  # fmt: skip
    r.add_argument("--study-dir", default="",
                   help="keep the timed study here (default: a temporary folder)")  # fmt: skip
    args = p.parse_args(argv)
    if sum((args.quality, args.search, args.ratios)) > 1:
        print("error: --quality, --search and --ratios are separate benches; run one at a time",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.quality:
        return _quality(args)
    if args.search:
        return _search(args)
    if args.ratios:
        return _ratios(args)

    import torch

    from trainables.catalog import validate
    from trainables.config import config_for, parse_assignments
    from trainables.game.device import resolve_device

    try:
        overrides = parse_assignments(args.set)
        cfg = config_for(args.scale or "paper", **{**overrides, "device": args.device})
        # The bench draws random inputs: the dataset sizes do not matter (and the synthetic
        # benchmark's render limit must not refuse the paper's geometry).
        sizes = ("n_action_train", "n_action_test", "n_privacy_train", "n_privacy_test")
        validate(dataclasses.replace(cfg, **dict.fromkeys(sizes, 2)))
        device = resolve_device(cfg.device)
    except (ValueError, RuntimeError) as e:
        return usage_error(e)
    cuda = device.type == "cuda"
    steps = args.steps or (5 if cuda else 1)
    warmup = args.warmup if args.warmup >= 0 else (2 if cuda else 0)
    workers = args.workers if args.workers >= 0 else cfg.workers
    name = (
        torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    )
    log(
        f"[bench] {cfg.scale} on {name}: {cfg.anonymizer}/{cfg.anon_encoder}, {cfg.action_model}, "
        f"{cfg.privacy_model}; {cfg.batch_size} clips of {cfg.frames}x{cfg.size}px + "
        f"{cfg.privacy_batch_size} privacy pairs per step; amp={cfg.amp and cuda}"
    )
    result: dict[str, Any] = {"scale": cfg.scale, "device": name}
    result.update(bench_step(cfg, steps, warmup, log))
    result.update(bench_loading(cfg, args.videos, workers, cuda, log))
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"minimax step: {result['step_clips_per_s']:.2f} clips/s ({result['step_seconds']:.3f} s/step)"
    )
    print(
        f"data loading: {result['load_clips_per_s']:.1f} clips/s ({workers} workers; "
        f"{result['load_first_epoch_clips_per_s']:.1f} clips/s in the first epoch, which starts them)"
    )
    if cuda:
        print(f"peak GPU memory: {result['peak_gpu_gib']:.2f} GiB")
    print(f"peak host RSS: {result['peak_rss_gib']:.2f} GiB")
    print(json.dumps(result))
    return 0


def _quality(args: argparse.Namespace) -> int:
    from study.quality import QualityPlan, report, run_quality
    from trainables.config import parse_assignments

    try:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        from search_spaces import BINDING_LAM, BUILTIN_BS

        lam = args.lam or BINDING_LAM
        if lam < 0:
            raise ValueError(f"--lam must be > 0 (the ablation runs lambda = 0), got {args.lam}")
        text = args.bounds or ",".join(f"{b:g}" for b in BUILTIN_BS)
        bounds = tuple(float(b) for b in text.split(",") if b.strip())
        if len(bounds) < 2:
            raise ValueError(f"--bounds needs at least two values, got {args.bounds!r}")
        overrides = parse_assignments(args.set)
        fixed = sorted({"seed", "data_seed", "eval_seed", "B", "lam"} & set(overrides))
        if fixed:
            raise ValueError(
                f"--set {', '.join(fixed)}: the quality bench sets these itself "
                "(use --seeds, --eval-seed and --bounds)"
            )
        plan = QualityPlan(
            scale=args.scale or "default",
            overrides={**overrides, "device": args.device},
            seeds=tuple(range(args.seeds)),
            bounds=bounds,
            lam=lam,
            eval_seed=args.eval_seed,
        )
        records = Path(args.records) if args.records else None
        rows = run_quality(plan, records=records, log=log)
    except ValueError as e:  # ConfigError included
        return usage_error(e)
    table, out = report(plan, rows)
    print(table)
    print(json.dumps(out))
    return 0


def _ratios(args: argparse.Namespace) -> int:
    from study.ratios import report, run_ratios
    from trainables.config import parse_assignments

    try:
        if args.trials < 2 or args.concurrency < 2:
            raise ValueError(
                f"--trials and --concurrency must be >= 2 (got {args.trials}, {args.concurrency})"
            )
        overrides = parse_assignments(args.set)
        fixed = sorted({"B", "lam", "seed", "scale"} & set(overrides))
        if fixed:
            raise ValueError(f"--set {', '.join(fixed)}: the ratios bench sets these itself")
        out = run_ratios(
            args.scale or "default",
            overrides,
            args.trials,
            args.concurrency,
            Path(args.study_dir) if args.study_dir else None,
            args.steps or 60,
            log,
            sharing_scale="" if args.sharing_scale in ("", "none") else args.sharing_scale,
        )
    except (ValueError, RuntimeError) as e:
        return usage_error(e)
    print(report(out))
    print(json.dumps(out))
    return 0


def _search(args: argparse.Namespace) -> int:
    from study.searchbench import SearchBenchPlan, report, run_bench
    from trainables.config import parse_assignments

    try:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        overrides = parse_assignments(args.set)
        fixed = sorted({"seed", "data_seed", "eval_seed"} & set(overrides))
        if fixed:
            raise ValueError(
                f"--set {', '.join(fixed)}: the search bench sets these itself (--eval-seed)"
            )
        plan = SearchBenchPlan(
            scale=args.scale or "default",
            overrides={**overrides, "device": args.device},
            search_seeds=tuple(range(args.seeds)),
            samplers=tuple(x.strip() for x in args.samplers.split(",") if x.strip()),
            b_scales=tuple(x.strip() for x in args.b_scales.split(",") if x.strip()),
            budget=args.budget,
            concurrency=args.concurrency,
            eval_seed=args.eval_seed,
        )
        records = Path(args.search_records) if args.search_records else None
        out = run_bench(plan, records=records, log=log)
    except ValueError as e:  # ConfigError and an unknown sampler included
        return usage_error(e)
    print(report(out))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
