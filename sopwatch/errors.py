"""One exception hierarchy; the CLI turns each into a one-line message and exit code 1."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a user's file a problem sits. ``line``/``col`` are 1-based; ``row`` is a register row."""

    path: str
    line: int | None = None
    col: int | None = None
    row: int | None = None

    def __str__(self) -> str:
        if self.row is not None:
            return f"{self.path}:row {self.row}"
        if self.line is None:
            return self.path
        if self.col is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


class SopwatchError(Exception):
    """Base of every error sopwatch reports to a user instead of a traceback."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class ConfigError(SopwatchError):
    """The config file, or a file it names, is malformed."""


class RuleError(SopwatchError):
    """A rules file is malformed: unknown op, bad time expression, bad recipient, ..."""


class InputError(SopwatchError):
    """A data input (register, people, calendar) cannot be read at all."""


class StateError(SopwatchError):
    """The state database is unusable."""


class ProblemList(SopwatchError):
    """Several problems found at once; ``validate`` lists them all."""

    def __init__(self, problems: list[SopwatchError]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
