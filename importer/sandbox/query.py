"""List queries: `filter[q][<attr>_<matcher>]`, `page[...]`, `sort`, `include`, `fields[<type>]`.

Parsing is strict, like JSONAPI::Resources: an unknown parameter, filter, include, field or sort
key is a 400. Selection uses a table index when an indexed `_eq`/`_in` filter is present, so a
look-up such as `customer_id_eq` or `reference_eq` does not scan the table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from importer.sandbox.jsonapi import bad_param
from importer.sandbox.persist import Record
from importer.sandbox.resources import SPECS, Spec
from importer.sandbox.store import Table

MATCHERS = ("not_eq", "jcont", "start", "eq", "in", "gt", "lt")
_FILTER = re.compile(r"^filter\[q\]\[([A-Za-z0-9_]+)\]$")
_PAGE = re.compile(r"^page\[([a-z_]+)\]$")
_FIELDS = re.compile(r"^fields\[([a-z_]+)\]$")


@dataclass(frozen=True, slots=True)
class Filter:
    attr: str
    matcher: str
    value: Any


@dataclass(frozen=True, slots=True)
class Query:
    filters: tuple[Filter, ...] = ()
    number: int = 1
    size: int = 10
    include: tuple[str, ...] = ()
    fields: Mapping[str, frozenset[str]] | None = None
    sort: tuple[tuple[str, bool], ...] = ()  # (attribute, descending)
    email_case_sensitive: bool = True  # the `email_case_sensitive` setting: `_eq`/`_in` as SQL `=`/`IN`


def parse_query(
    params: Iterable[tuple[str, str]],
    spec: Spec,
    *,
    default_size: int,
    max_size: int,
    collection: bool,
    email_case_sensitive: bool = True,
) -> Query:
    filters: list[Filter] = []
    page = {"number": 1, "size": default_size}
    include: tuple[str, ...] = ()
    fields: dict[str, frozenset[str]] = {}
    sort: tuple[tuple[str, bool], ...] = ()
    for key, value in params:
        if collection and (m := _FILTER.match(key)):
            filters.append(_parse_filter(spec, m.group(1), value, email_case_sensitive))
        elif collection and key.startswith("filter"):
            raise bad_param("Filter not allowed", f"{key} is not allowed.", "FILTER_NOT_ALLOWED")
        elif collection and (m := _PAGE.match(key)) and m.group(1) in page:
            page[m.group(1)] = _page_value(m.group(1), value, max_size)
        elif key == "include":
            include = _parse_include(spec, value)
        elif m := _FIELDS.match(key):
            fields[m.group(1)] = _parse_fields(m.group(1), value)
        elif collection and key == "sort":
            sort = _parse_sort(spec, value)
        else:
            raise bad_param("Param not allowed", f"{key} is not allowed.", "PARAM_NOT_ALLOWED")
    return Query(
        tuple(filters), page["number"], page["size"], include, fields or None, sort, email_case_sensitive
    )


def _parse_filter(spec: Spec, name: str, value: str, email_case_sensitive: bool) -> Filter:
    for matcher in MATCHERS:
        attr = name.removesuffix(f"_{matcher}")
        if attr != name and attr in spec.filters:
            kind = spec.filters[attr]
            if (kind == "json") != (matcher == "jcont"):
                break
            return Filter(attr, matcher, _filter_value(kind, matcher, name, value, email_case_sensitive))
    raise bad_param("Filter not allowed", f"{name} is not allowed.", "FILTER_NOT_ALLOWED")


def _filter_value(kind: str, matcher: str, name: str, value: str, email_case_sensitive: bool) -> Any:
    if matcher == "jcont":
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise bad_param(
                "Invalid filter value", f"{value} is not a valid value for {name}.", "INVALID_FILTER_VALUE"
            )
        return parsed
    values = value.split(",") if matcher == "in" else [value]
    if kind == "email" and not email_case_sensitive:
        values = [v.lower() for v in values]
    elif kind == "time":
        values = [_normalize_time(name, v) for v in values]
    return frozenset(values) if matcher == "in" else values[0]


def _normalize_time(name: str, value: str) -> str:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise bad_param(
            "Invalid filter value", f"{value} is not a valid value for {name}.", "INVALID_FILTER_VALUE"
        ) from exc
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _page_value(name: str, value: str, max_size: int) -> int:
    number = int(value) if value.isdigit() else 0
    if number < 1 or (name == "size" and number > max_size):
        raise bad_param(
            "Invalid page value",
            f"{value} is not a valid value for {name} page parameter.",
            "INVALID_PAGE_VALUE",
        )
    return number


def _parse_include(spec: Spec, value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    for name in names:
        if name not in spec.includable:
            raise bad_param(
                "Invalid field",
                f"{name} is not a valid includable relationship of {spec.type}",
                "INVALID_INCLUDE",
            )
    return names


def _parse_fields(type_: str, value: str) -> frozenset[str]:
    spec = SPECS.get(type_)
    if spec is None:
        raise bad_param("Invalid resource", f"{type_} is not a valid resource.", "INVALID_RESOURCE")
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    for name in sorted(names - spec.fields):
        raise bad_param("Invalid field", f"{name} is not a valid field for {type_}.", "INVALID_FIELD")
    return names


def _parse_sort(spec: Spec, value: str) -> tuple[tuple[str, bool], ...]:
    out = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        name = part.removeprefix("-")
        if name not in spec.sortable:
            raise bad_param(
                "Invalid sort criteria",
                f"{name} is not a valid sort criteria for {spec.type}",
                "INVALID_SORT_CRITERIA",
            )
        out.append((name, part.startswith("-")))
    return tuple(out)


# Selection ----------------------------------------------------------------------------------------


def contains(outer: Any, inner: Any) -> bool:
    """JSON containment, like PostgreSQL's `@>`."""
    if isinstance(inner, dict):
        return isinstance(outer, dict) and all(k in outer and contains(outer[k], v) for k, v in inner.items())
    if isinstance(inner, list):
        return isinstance(outer, list) and all(any(contains(o, i) for o in outer) for i in inner)
    return bool(outer == inner)


def _predicate(f: Filter, kind: str, email_case_sensitive: bool) -> Callable[[Record], bool]:
    attr, value = f.attr, f.value
    fold = kind == "email" and not email_case_sensitive

    def get(record: Record) -> Any:
        v = record.get(attr)
        return v.lower() if fold and isinstance(v, str) else v

    tests: dict[str, Callable[[Any], bool]] = {
        "eq": lambda v: v is not None and v == value,
        "not_eq": lambda v: v is not None and v != value,
        "in": lambda v: v in value,
        "start": lambda v: isinstance(v, str) and v.startswith(value),
        "gt": lambda v: v is not None and v > value,
        "lt": lambda v: v is not None and v < value,
        "jcont": lambda v: contains(v, value),
    }
    test = tests[f.matcher]
    return lambda record: test(get(record))


def _sort_key(name: str) -> Callable[[Record], tuple[bool, str]]:
    return lambda record: (record.get(name) is not None, str(record.get(name) or ""))


def select(table: Table, spec: Spec, query: Query, fixed: Filter | None = None) -> list[Record]:
    """The records matching every filter (and `fixed`), in list order."""
    filters = query.filters if fixed is None else (fixed, *query.filters)
    candidates: set[str] | None = None
    for f in filters:
        if f.matcher in ("eq", "in") and table.has_index(f.attr):
            values = f.value if f.matcher == "in" else (f.value,)
            if spec.filters.get(f.attr) == "email":  # the index holds e-mails in lower case
                values = {v.lower() for v in values}
            ids: set[str] = set().union(*(table.lookup(f.attr, v) for v in values))
            candidates = ids if candidates is None else candidates & ids
    if candidates is None:
        rows: list[Record] = list(table.ordered())
    else:
        rows = sorted((table.rows[i] for i in candidates), key=lambda r: (r["created_at"], r["id"]))
    for f in filters:
        test = _predicate(f, spec.filters.get(f.attr, "text"), query.email_case_sensitive)
        rows = [r for r in rows if test(r)]
    for name, descending in reversed(query.sort):
        rows.sort(key=_sort_key(name), reverse=descending)  # stable, so earlier keys win
    return rows
