"""``python -m study.bench speed --scale paper``: how fast one trial computes on this device.

It prints three figures, each on its own line and then together as one JSON object:

- the clips/s of one minimax step (f_A, f_T and f_B forward and backward, both steps) at the
  scale's models, geometry and batch sizes, on random inputs;
- the clips/s of data loading alone: streaming training clips (decoding, clip sampling, crop
  and resize) of videos written for the purpose (320x240, 64 frames, like UCF101's) in
  persistent DataLoader workers, as a trial reads them;
- peak memory: the GPU's peak allocation on CUDA, the process's peak RSS otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.bench.plan import TrialPlan
from trainables.config import SCALES, help_field
from trainables.log import Log, usage_error


def log(msg: str) -> None:
    """Progress, on stderr: stdout is the bench's figures."""
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SpeedPlan(TrialPlan):
    """How fast one trial computes on this device: a minimax step, data loading, peak memory."""

    scale: str = help_field("paper", "trial scale of every trial: its models, geometry and batch "
                            "sizes are timed", tuple(SCALES))  # fmt: skip
    steps: int = help_field(0, "timed minimax steps (0: 5 on CUDA, 1 on CPU)")
    warmup: int = help_field(-1, "untimed minimax steps before them (-1: 2 on CUDA, 0 on CPU)")
    videos: int = help_field(16, "videos the loading bench writes and decodes")
    workers: int = help_field(-1, "loading workers (-1: the scale's)")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step: Callable[[], object], steps: int, warmup: int, device: Any,
                log: Log | None = None) -> float:  # fmt: skip
    """Seconds per call of ``step``: ``warmup`` untimed calls, then ``steps`` timed ones (the
    device synchronised around them, so that CUDA's queued work counts)."""
    for i in range(warmup):
        step()
        if log:
            log(f"[bench] warm-up step {i + 1}/{warmup}")
    _sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step()
        if log:
            log(f"[bench] timed step {i + 1}/{steps}")
    _sync(device)
    return (time.perf_counter() - t0) / steps


def bench_step(cfg: Any, steps: int, warmup: int, log: Log) -> dict[str, float]:
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
    sec = timed_steps(
        lambda: minimax_step(anon, f_t, f_b, x, y, p1, None, cfg, rt, opts), steps, warmup, device,
        log,
    )  # fmt: skip
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


def main(plan: SpeedPlan, log: Log = log) -> int:
    """Run the speed bench; print its figures (stdout) and progress (``log``)."""
    import torch

    from trainables.catalog import validate
    from trainables.config import config_for
    from trainables.game.device import resolve_device

    try:
        cfg = config_for(plan.scale, **plan.overrides)
        # The bench draws random inputs: the dataset sizes do not matter (and the synthetic
        # benchmark's render limit must not refuse the paper's geometry).
        sizes = ("n_action_train", "n_action_test", "n_privacy_train", "n_privacy_test")
        small: dict[str, Any] = dict.fromkeys(sizes, 2)
        validate(dataclasses.replace(cfg, **small))
        device = resolve_device(cfg.device)
    except (ValueError, RuntimeError) as e:
        return usage_error(e)
    cuda = device.type == "cuda"
    steps = plan.steps or (5 if cuda else 1)
    warmup = plan.warmup if plan.warmup >= 0 else (2 if cuda else 0)
    workers = plan.workers if plan.workers >= 0 else cfg.workers
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
    result.update(bench_loading(cfg, plan.videos, workers, cuda, log))
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
