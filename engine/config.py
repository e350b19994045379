"""One way to build a job's settings: a frozen dataclass made from a dict, strict about unknown keys,
whose validation names the field each problem is about (`ConfigError.errors`), so a form can put the
message next to that field and a command line can print it as it is."""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

T = TypeVar("T", bound="StrictConfig")
GENERAL = "__all__"  # the key of a problem that is about no one field


class ConfigError(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)  # field name -> message (the message starts with the field's name)
        super().__init__("; ".join(self.errors.values()))


class Problems(dict):
    """Collects one message per field while a config checks itself; `raise_any()` at the end."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, message)

    def raise_any(self) -> None:
        if self:
            raise ConfigError(self)


def check_sampling(problems: Problems, top_k: int, top_p: float) -> None:
    """The sampling settings every config that samples carries (recorded with its results)."""
    if top_k < 0:
        problems.add("top_k", "top_k must be at least 0 (0: no limit)")
    if not 0 < top_p <= 1:
        problems.add("top_p", "top_p must be above 0 and at most 1")


class StrictConfig:
    """Mix into a `@dataclass(frozen=True)`; `KIND` names the settings in the unknown-key message."""

    KIND = "settings"

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Every key must be a field; values are converted by `_convert` (e.g. lists to tuples)."""
        unknown = sorted(set(data) - cls.field_names())
        if unknown:
            raise ConfigError({GENERAL: f"unknown {cls.KIND}: {', '.join(unknown)}"})
        return cls(**cls._convert(dict(data)))

    @classmethod
    def from_known(cls: type[T], data: dict[str, Any]) -> T:
        """From a mapping that holds other things too (a command line's options): its keys that are fields."""
        return cls.from_dict({k: v for k, v in data.items() if k in cls.field_names()})

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def _convert(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
