"""``python -m trainables.anonymize --weights RUN_OR_FILE --input VIDEO_OR_DIR --output OUT``:
apply a trained anonymizer f_A to real videos and images.

``--weights`` is a local ``anonymizer.pt`` (its ``config.json`` beside it names the
architecture), an MLflow run id of a trial, or a models URI (``models:/...``) of the anonymizer
a study logged. Weights always load with ``weights_only=True``: a logged model's pickle is never
unpickled here.

Each video is written to OUT at its own frame rate (H.264 in MP4), each image in its own format;
a directory's files keep their relative paths. The learned anonymizers are fully convolutional
and run frame by frame at the input's resolution (padded to their size multiple). A file that
cannot be read is reported by name and the others go through. Each file's RMS(X - f_A(X)) on
[0, 1] pixels is printed, the quantity the study's bound B restrains.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainables.config import from_dict
from trainables.log import usage_error
from trainables.models.anonymizers import Anonymizer, build_anonymizer

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class AnonymizeError(ValueError):
    """An input, weights or output that cannot be used; the message names it."""


def load_anonymizer(weights: Path, config: Path) -> Anonymizer:
    """The anonymizer that ``config`` (a trial's config.json) names, with the state dict in
    ``weights`` loaded safely."""
    try:
        recorded = json.loads(config.read_text())
        # A trial recorded before anon_init existed trained a plain sigmoid(net(x)).
        cfg = from_dict({"anon_init": "l1", **recorded})
    except (OSError, ValueError) as e:
        raise AnonymizeError(f"{config}: not a trial config.json ({e})") from e
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        # tubelet_prune's scorer predicts the actions it trained on: its head says how many.
        head = state.get("vit.action_head.weight") if isinstance(state, dict) else None
        classes = int(head.shape[0]) if head is not None else 2
        anon = build_anonymizer(cfg.anonymizer, cfg.anon_encoder, cfg, classes)
        anon.load_state_dict(state)
    except Exception as e:
        raise AnonymizeError(
            f"{weights}: not the weights of {cfg.anonymizer} ({cfg.anon_encoder}): {e}"
        ) from e
    if anon.needs_mask:
        raise AnonymizeError(
            f"{cfg.anonymizer} needs actor masks, which real videos do not come with"
        )
    return anon.eval()


def _find(folder: Path, name: str) -> Path:
    found = sorted(folder.rglob(name))
    if not found:
        raise AnonymizeError(f"{folder}: no {name} in what was downloaded")
    return found[0]


def resolve_weights(spec: str, tracking_uri: str, into: Path) -> tuple[Path, Path]:
    """(anonymizer.pt, config.json) for a local file, an MLflow run id or a models URI."""
    local = Path(spec)
    if local.is_file():
        config = local.with_name("config.json")
        if not config.is_file():
            raise AnonymizeError(
                f"{local}: no config.json beside it to name the anonymizer; download both "
                "artifacts of the trial's run"
            )
        return local, config
    if spec.startswith("models:/") or _RUN_ID.match(spec):
        import mlflow

        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        if not uri:
            raise AnonymizeError(
                f"--weights {spec}: give the study's MLflow server with --tracking-uri "
                "(or MLFLOW_TRACKING_URI)"
            )
        mlflow.set_tracking_uri(uri)
        try:
            if spec.startswith("models:/"):
                out = Path(
                    mlflow.artifacts.download_artifacts(artifact_uri=spec, dst_path=str(into))
                )
                return _find(out, "anonymizer.pt"), _find(out, "config.json")
            paths = [
                Path(mlflow.artifacts.download_artifacts(run_id=spec, artifact_path=name, dst_path=str(into)))
                for name in ("anonymizer.pt", "config.json")
            ]  # fmt: skip
            return paths[0], paths[1]
        except AnonymizeError:
            raise
        except Exception as e:
            raise AnonymizeError(f"--weights {spec}: cannot download it from {uri}: {e}") from e
    raise AnonymizeError(
        f"--weights {spec}: neither a file, an MLflow run id (32 hex digits) nor a models:/ URI"
    )


def inputs(path: Path) -> list[Path]:
    """The videos and images at ``path`` (a file, or a directory searched recursively)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise AnonymizeError(f"--input {path}: no such file or directory")
    found = sorted(
        p for p in path.rglob("*") if p.suffix.lower() in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES)
    )
    if not found:
        raise AnonymizeError(
            f"--input {path}: no video ({', '.join(VIDEO_SUFFIXES)}) or image "
            f"({', '.join(IMAGE_SUFFIXES)}) in it"
        )
    return found


@torch.no_grad()
def apply_frames(anon: Anonymizer, frames: np.ndarray, device: torch.device) -> np.ndarray:
    """Anonymize uint8 frames (N, H, W, 3) at their resolution, padded (reflect) to the
    anonymizer's size multiple and cropped back."""
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float().div(255)
    h, w = x.shape[-2:]
    m = anon.size_multiple
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    y = anon(x, None)[..., :h, :w].clamp(0, 1)
    return y.mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class Outcome:
    """What was done to one file."""

    source: Path
    output: Path
    frames: int
    rms: float


class _Rms:
    """Running RMS(X - f_A(X)) over pixels in [0, 1]."""

    def __init__(self) -> None:
        self.sq, self.n = 0.0, 0

    def add(self, raw: np.ndarray, anon: np.ndarray) -> None:
        d = (raw.astype(np.float64) - anon.astype(np.float64)) / 255.0
        self.sq += float((d * d).sum())
        self.n += d.size

    @property
    def value(self) -> float:
        return float(np.sqrt(self.sq / max(self.n, 1)))


def _batches(frames: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for f in frames:
        batch.append(f)
        if len(batch) == n:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def anonymize_video(
    anon: Anonymizer, src: Path, dst: Path, device: torch.device, batch: int, progress: bool
) -> Outcome:
    """Decode ``src`` with PyAV, anonymize it batch by batch and encode it to ``dst`` (H.264)
    at the source's frame rate."""
    import av
    from tqdm import tqdm

    try:
        inp = av.open(str(src))
        if not inp.streams.video:
            raise AnonymizeError(f"{src}: no video stream")
    except av.error.FFmpegError as e:
        raise AnonymizeError(f"{src}: cannot be read as a video ({e})") from e
    tmp = dst.with_name(dst.name + ".part.mp4")
    rms, n = _Rms(), 0
    try:
        vin = inp.streams.video[0]
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        total = vin.frames or None
        out = av.open(str(tmp), mode="w")
        vout = None
        bar = tqdm(total=total, unit="frame", desc=src.name, file=sys.stderr, disable=not progress)
        try:
            frames = (f.to_ndarray(format="rgb24") for f in inp.decode(vin))
            for raw in _batches(frames, batch):
                anon_b = apply_frames(anon, raw, device)
                rms.add(raw, anon_b)
                if vout is None:
                    vout = out.add_stream("libx264", rate=rate)
                    vout.height, vout.width = raw.shape[1], raw.shape[2]
                    even = raw.shape[1] % 2 == 0 and raw.shape[2] % 2 == 0
                    vout.pix_fmt = "yuv420p" if even else "yuv444p"
                    vout.options = {"crf": "18"}
                for a in anon_b:
                    out.mux(vout.encode(av.VideoFrame.from_ndarray(a, format="rgb24")))
                n += len(raw)
                bar.update(len(raw))
            if vout is not None:
                out.mux(vout.encode(None))
        finally:
            bar.close()
            out.close()
        if n == 0:
            raise AnonymizeError(f"{src}: no frame could be decoded")
        os.replace(tmp, dst)
    except av.error.FFmpegError as e:
        raise AnonymizeError(f"{src}: decoding failed after {n} frames ({e})") from e
    finally:
        inp.close()
        tmp.unlink(missing_ok=True)
    return Outcome(src, dst, n, rms.value)


def anonymize_image(anon: Anonymizer, src: Path, dst: Path, device: torch.device) -> Outcome:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(src) as im:
            raw = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise AnonymizeError(f"{src}: cannot be read as an image ({e})") from e
    out = apply_frames(anon, raw[None], device)
    rms = _Rms()
    rms.add(raw[None], out)
    Image.fromarray(out[0]).save(dst)
    return Outcome(src, dst, 1, rms.value)


def output_target(src: Path, out: Path) -> Path | None:
    """The file that ``out`` names when the input is the one file ``src`` and ``out`` looks like
    a file (a video or image suffix, not an existing directory); None when ``out`` is a directory.

    A video is written as H.264 MP4, so a video goes to a ``.mp4`` file; an image keeps being an
    image, in the format ``out``'s suffix names. Anything else is refused, naming the fix.
    """
    suffix = out.suffix.lower()
    if out.is_dir() or suffix not in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES):
        return None
    is_video = src.suffix.lower() in VIDEO_SUFFIXES
    if is_video and suffix != ".mp4":
        raise AnonymizeError(
            f"--output {out}: a video is written as H.264 MP4; name a .mp4 file "
            f"(--output {out.with_suffix('.mp4')}) or a directory"
        )
    if not is_video and suffix not in IMAGE_SUFFIXES:
        raise AnonymizeError(
            f"--output {out}: {src.name} is an image; name an image file "
            f"({', '.join(IMAGE_SUFFIXES)}) or a directory"
        )
    return out


def check_output(path: Path, out: Path) -> None:
    """Refuse, before any work, an ``--output`` that names a file for a directory of inputs, or
    a file that the one input cannot be written as (:func:`output_target`)."""
    if path.is_dir() and (
        out.is_file() or out.suffix.lower() in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES)
    ):
        raise AnonymizeError(
            f"--output {out}: --input {path} is a directory, so --output must be a directory "
            "(each file keeps its relative path under it)"
        )
    if path.is_file() and output_target(path, out) is None and out.is_file():  # target refuses
        raise AnonymizeError(f"--output {out}: an existing file that is not a video or an image")


def output_path(src: Path, root: Path, out: Path) -> Path:
    """Where ``src`` goes: ``out`` itself when it names a file for the one input file, else its
    path relative to the input root, under ``out``; videos as .mp4."""
    if root.is_file():
        target = output_target(src, out)
        if target is not None:
            return target
    rel = Path(src.name) if root.is_file() else src.relative_to(root)
    if src.suffix.lower() in VIDEO_SUFFIXES:
        rel = rel.with_suffix(".mp4")
    return out / rel


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainables.anonymize",
        description="Apply a trained anonymizer to videos and images: each is written to "
        "--output at its own frame rate, with the RMS(X - f_A(X)) applied to it printed.",
        allow_abbrev=False,
    )
    p.add_argument(
        "--weights",
        required=True,
        help="anonymizer.pt (with its config.json beside it), an MLflow run id of a trial, "
        "or a models:/ URI",
    )
    p.add_argument("--input", required=True, type=Path, help="a video, an image or a directory")
    p.add_argument(
        "--output",
        required=True,
        type=Path,
        help="output directory; for one input file, also a file (.mp4 for a video, an image "
        "suffix for an image)",
    )
    p.add_argument(
        "--tracking-uri",
        default="",
        help="the study's MLflow server, for a run id or models URI (default: MLFLOW_TRACKING_URI)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--batch", type=int, default=16, help="frames per forward pass")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch < 1:
        print("error: --batch must be >= 1", file=sys.stderr)
        return 2
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    try:
        files = inputs(args.input)
        if args.output.resolve() == args.input.resolve():
            raise AnonymizeError("--output must differ from --input: nothing is overwritten")
        check_output(args.input, args.output)
        with tempfile.TemporaryDirectory() as d:
            weights, config = resolve_weights(args.weights, args.tracking_uri, Path(d))
            anon = load_anonymizer(weights, config).to(device)
    except AnonymizeError as e:
        return usage_error(e)
    failed = 0
    for src in files:
        dst = output_path(src, args.input, args.output)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            if src.suffix.lower() in IMAGE_SUFFIXES:
                o = anonymize_image(anon, src, dst, device)
            else:
                o = anonymize_video(anon, src, dst, device, args.batch, not args.quiet)
        except AnonymizeError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            continue
        print(f"{o.source} -> {o.output}: {o.frames} frame(s), RMS {o.rms:.4f}", flush=True)
    done = len(files) - failed
    print(f"anonymized {done} of {len(files)} file(s)" + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
