"""A small name -> builder registry shared by anonymizers, action and privacy models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps user-facing names to builders, in the style of timm's model registry."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}
        self._attrs: dict[str, dict[str, Any]] = {}

    def register(
        self, name: str, help: str = "", **attrs: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """A decorator that registers a builder under ``name``; ``attrs`` are facts about the
        entry that other modules select by (:meth:`where`), such as a paper baseline."""

        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = fn
            self._help[name] = help or (fn.__doc__ or "").strip().split("\n")[0]
            self._attrs[name] = dict(attrs)
            return fn

        return deco

    def where(self, key: str, value: Any) -> list[str]:
        """The names registered with ``key`` = ``value``, sorted."""
        return [n for n in self.names() if self._attrs[n].get(key) == value]

    def names(self) -> list[str]:
        return sorted(self._builders)

    def describe(self, name: str) -> str:
        self.check(name)
        return self._help[name]

    def check(self, name: str) -> None:
        if name not in self._builders:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s are: {', '.join(self.names())}"
            )

    def get(self, name: str) -> Callable[..., T]:
        self.check(name)
        return self._builders[name]

    def build(self, name: str, **kwargs: object) -> T:
        return self.get(name)(**kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self._builders
