"""Command-line flags derived from a config dataclass's field metadata (help, choices, type): one
``--flag`` per field, the ``--scale`` read ahead of the full parser, and the overrides a parsed
namespace gives. Used by every ``trainables`` CLI and by the study's own config."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from trainables.config import SCALES, TrialConfig, flag


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    exclude: tuple[str, ...] = (),
    defaults: Mapping[str, Any] | None = None,
    repeat: tuple[str, ...] = (),
    scale: str = "smoke",
) -> None:
    """One ``--flag`` per field of the dataclass ``cls``, with the field's help. With
    ``defaults`` None, every flag defaults to None (= take the scale's value) and its help names
    the value that ``scale`` gives it; otherwise flags default to ``defaults``. Bool fields are
    switches; fields in ``repeat`` collect repeated ``KEY=VALUE`` flags."""
    shown_scale = {**SCALES.get(scale, {})} if defaults is None else {}
    for f in fields(cls):
        if f.name in exclude:
            continue
        if defaults is None:
            help_ = f.metadata.get("help", "") + f" ({scale}: {shown_scale.get(f.name, f.default)})"
            default = None
        else:
            help_ = f.metadata.get("help", "") + f" (default: {defaults[f.name]!r})"
            default = defaults[f.name]
        choices = f.metadata.get("choices") or None
        if f.name in repeat:
            parser.add_argument(
                flag(f.name), dest=f.name, action="append", default=[], metavar="KEY=VALUE",
                help=help_,
            )  # fmt: skip
        elif str(f.type) == "bool":
            action = argparse.BooleanOptionalAction if defaults is None else "store_true"
            parser.add_argument(
                flag(f.name), dest=f.name, action=action, default=default, help=help_
            )
        else:
            typ = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(
                flag(f.name), dest=f.name, type=typ, default=default, help=help_, choices=choices
            )


def scale_in(argv: list[str] | None, default: str = "smoke") -> str:
    """The ``--scale`` that ``argv`` names (default ``default``), read before the full parser
    is built so that its help can show that scale's values; an unknown name is left to the full
    parser to refuse."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--scale", default=default)
    known, _ = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.scale if known.scale in SCALES else default


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in fields(TrialConfig)} - {"scale"}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
