"""Problems grouped by kind, for the console: "12 rows: … (rows 4, 8, 19, …)".

Pure: the report's one pass over the journal feeds every failing row to `ProblemTally.add`; the
tally keeps a count and the first few locations per kind, and at most `MAX_KINDS` kinds, so its
memory does not grow with the file. A kind is the row's status, error code and its message with
the row's own values taken out (quoted values, e-mails, ids, row numbers), so rows that fail for
the same reason group together whatever their values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from importer.models import row_where

SHOWN_ROWS = 5
MAX_KINDS = 50
MAX_LABEL = 160
LABEL_CACHE = 4096

# Each pattern runs only when its cheap pre-check passes: this runs once per failing row.
_QUOTED = re.compile(
    r"(?P<keep>\bcolumns? '[^']*'(?: and '[^']*')?)"  # a column's name is the kind, not a value
    r"""|'(?:[^'\\]|\\.)*'"""  # a repr()'d value: 'x@'
    r'''|"(?:[^"\\]|\\.)*"'''
)
# Starts only where a word starts, and `++` gives back nothing: one linear scan, no backtracking.
_EMAIL = re.compile(r"(?<![^\s;,()])[^\s@;,()]++@[^\s;,()]+")
_API_ID = re.compile(r"\b(?=[A-Za-z]*\d)[A-Za-z0-9]{10}\b")
_ROW_REFERENCE = re.compile(r"(?:\S+ )?(?:\[[^\]]*\] )?row \d+")


def _keep_or_elide(match: re.Match[str]) -> str:
    return match.group("keep") or "…"


def kind_label(status: str, error_code: str | None, detail: str | None) -> str:
    """A row's problem without its values: what groups it with others."""
    text = detail or ""
    if "'" in text or '"' in text:
        text = _QUOTED.sub(_keep_or_elide, text)
    if "@" in text:
        text = _EMAIL.sub("…", text)
    text = _API_ID.sub("…", text)
    if "row " in text:
        text = _ROW_REFERENCE.sub("an earlier row", text)
    text = " ".join(text.split())
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    # INVALID_ROW says nothing the `invalid` status does not; other codes name the kind.
    code = f"{error_code}: " if error_code and error_code != "INVALID_ROW" else ""
    return f"{status}: {code}{text}" if text else f"{status}{f' {error_code}' if error_code else ''}"


@dataclass(slots=True)
class ProblemKind:
    label: str
    count: int = 0
    rows: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass(slots=True)
class ProblemTally:
    kinds: dict[str, ProblemKind] = field(default_factory=dict)
    other_rows: int = 0  # rows of kinds beyond MAX_KINDS
    to_fix: int = 0  # rows a person must change (not merely rows a stopped run did not send)
    # Rows that count as success but were left alone for a reason a person should hear
    # (`skipped`: undone earlier, not ours to delete): grouped the same way, printed as notes.
    notes: ProblemTally | None = None
    sources: set[tuple[str, str]] = field(default_factory=set)
    _labels: dict[tuple[str, str | None, str | None], str] = field(default_factory=dict)

    def add(
        self,
        status: str,
        error_code: str | None,
        detail: str | None,
        where: tuple[str, str, int],
        values: Iterable[str] = (),
    ) -> None:
        """Count one failing row. `values`: its cells; a message quotes them (`'x@'`), and taking
        them out first with plain string replaces makes most rows' messages identical, so the
        regular expressions run once per kind of message rather than once per row."""
        if detail and "'" in detail:
            for value in values:
                if value:
                    quoted = f"'{value}'"
                    if quoted in detail:
                        detail = detail.replace(quoted, "'…'")
        if status != "not_attempted":
            self.to_fix += 1
        if len(self.sources) < 2:
            self.sources.add(where[:2])
        # Rows that share a message (every not_attempted row of an aborted run, say) are
        # labelled once; the cache is bounded, like everything else here.
        cache_key = (status, error_code, detail)
        label = self._labels.get(cache_key)
        if label is None:
            label = kind_label(status, error_code, detail)
            if len(self._labels) < LABEL_CACHE:
                self._labels[cache_key] = label
        kind = self.kinds.get(label)
        if kind is None:
            if len(self.kinds) >= MAX_KINDS:
                self.other_rows += 1
                return
            kind = self.kinds[label] = ProblemKind(label)
        kind.count += 1
        if len(kind.rows) < SHOWN_ROWS:
            kind.rows.append(where)

    def note(
        self, status: str, error_code: str | None, detail: str | None, where: tuple[str, str, int]
    ) -> None:
        if self.notes is None:
            self.notes = ProblemTally()
        self.notes.add(status, error_code, detail, where)

    @property
    def total(self) -> int:
        return sum(k.count for k in self.kinds.values()) + self.other_rows

    def lines(self) -> list[str]:
        """One line per kind, the most frequent first: `12 rows: <kind> (rows 4, 8, 19, …)`.
        Row numbers alone when every failing row is from one file and sheet, else each row is
        named `file [sheet] row n`."""
        one_source = len(self.sources) <= 1
        out = []
        for kind in sorted(self.kinds.values(), key=lambda k: -k.count):
            shown = [_where(w, one_source) for w in kind.rows]
            more = ", …" if kind.count > len(kind.rows) else ""
            noun = "row" if kind.count == 1 else "rows"
            prefix = ("row " if kind.count == 1 else "rows ") if one_source else ""
            out.append(f"{kind.count} {noun}: {kind.label} ({prefix}{', '.join(shown)}{more})")
        if self.other_rows:
            out.append(f"{self.other_rows} more rows of other kinds: see failures.csv")
        return out

    def as_list(self) -> list[dict[str, object]]:
        """For a JSON log event: the same groups, rows as {file, sheet, row}."""
        return [
            {
                "kind": k.label,
                "rows": k.count,
                "first_rows": [{"file": f, "sheet": s, "row": n} for f, s, n in k.rows],
            }
            for k in sorted(self.kinds.values(), key=lambda k: -k.count)
        ]


def _where(where: tuple[str, str, int], bare: bool) -> str:
    source_file, sheet, row_number = where
    if bare:
        return str(row_number)
    return row_where(source_file, sheet, row_number)
