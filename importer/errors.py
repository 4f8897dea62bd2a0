"""The importer's exceptions, grouped by what the caller must do about them.

    ImporterError                 anything we raise on purpose; the CLI maps it to an exit code
    ├── UsageError       (exit 2) bad flags or arguments
    ├── ConfigError      (exit 2) config.yaml / environment: names the key and the fix
    ├── SourceError      (exit 2) an input file that cannot be read: names the file and the fix
    ├── PreflightError   (exit 2) report dir or journal not writable, invalid-row ratio exceeded …
    ├── Interrupted      (exit 130) Ctrl-C/SIGTERM before anything was sent
    └── RunAborted       (exit 3) the run cannot go on (bad credentials, API refuses us); rows
                                  not yet sent are reported `not_attempted`

Per-row API failures are *values* (`models.Outcome`), never exceptions: one bad row must not
cancel the others.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_INTERRUPTED = 130


class ImporterError(Exception):
    """Base class. `str(err)` is the one-line message a person sees."""

    exit_code = EXIT_USAGE


class UsageError(ImporterError):
    exit_code = EXIT_USAGE


class ConfigError(ImporterError):
    exit_code = EXIT_USAGE


class SourceError(ImporterError):
    """An input that cannot be read. The message always names the file."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.detail = message

    def __reduce__(self) -> tuple[type[SourceError], tuple[str, str]]:
        # Pickled by the streaming intake's child process (bulk/stream.py) to re-raise it here.
        return (type(self), (self.path, self.detail))


class PreflightError(ImporterError):
    exit_code = EXIT_USAGE


class Interrupted(ImporterError):
    """Ctrl-C or SIGTERM before any request could be sent (e.g. while reading the input)."""

    exit_code = EXIT_INTERRUPTED


class RunAborted(ImporterError):
    exit_code = EXIT_ABORTED

    def __init__(self, message: str, stats: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.stats = stats or {}
