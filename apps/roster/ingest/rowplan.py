"""Compile the checks of one CSV file into a single straight-line Python function.

A feed of a large district has millions of rows, and a generic loop over column descriptors
costs an attribute lookup, a branch and a call per field. Instead, each file's plan (which
CSV position feeds which canonical column, with which converter) is turned once into the
source of a function such as::

    def convert(f, P):
        if f[1] or f[2]:
            P.append(("status", BAD_STATUS, BULK))
        c0 = f[0]
        if c0:
            if guid(c0) is None: P.append(("sourcedId", BAD_GUID, None))
        else:
            P.append(("sourcedId", REQUIRED_MISSING, None))
        ...
        return (c0, None, None, c3, ...)

and compiled. The generated source is built only from the schema (column names, types) and
integer positions; nothing read from a feed ever becomes code. ``source`` is kept on the plan
so the generated function can be read when debugging.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from apps.roster import schema as S
from apps.roster.ingest import errors as E
from apps.roster.ingest import fields as F

_GUID_SEGMENT = "[0-9A-Za-z._/@-]{{{0},255}}"
BULK_DETAIL = "bulk rows must leave status and dateLastModified empty"
DELTA_DETAIL = "delta rows need both status and dateLastModified"


@dataclass(frozen=True)
class Field:
    """One CSV column on its way into the canonical row."""

    csv_index: int
    out_index: int  # -1: checked but not part of the canonical row (1.1 users.role)
    column: S.Column
    header: str  # the header as written in the file's version
    required: bool
    mapping: dict[str, str] | None = None


RowConverter = Callable[[list[str], list], tuple | list]


def compile_plan(
    name: str,
    fields: list[Field],
    size: int,
    mode: str,
    date_order: list[tuple[int, int, str, str]],
    *,
    as_list: bool = False,
) -> tuple[RowConverter, str]:
    """Return (convert(fields, problems) -> canonical row, generated source)."""
    env: dict[str, object] = {
        "BAD": F.BAD,
        "guid": F._guid_match,
        "BAD_STATUS": E.BAD_STATUS,
        "REQUIRED_MISSING": E.REQUIRED_MISSING,
        "BAD_GUID": E.BAD_GUID,
        "BAD_BOOLEAN": E.BAD_BOOLEAN,
        "BOOL_REQ": {"true": True, "false": False}.get,
        "BOOL_OPT": {"true": True, "false": False, "": None}.get,
        "DATE_ORDER": E.DATE_ORDER,
        "BULK": BULK_DETAIL,
        "DELTA": DELTA_DETAIL,
    }
    lines = ["def convert(f, P):"]
    emit = lines.append
    if mode == "bulk":
        emit("    if f[1] or f[2]:")
        emit("        P.append(('status' if f[1] else 'dateLastModified', BAD_STATUS, BULK))")
    else:
        emit("    if not f[1] or not f[2]:")
        emit("        P.append(('status' if not f[1] else 'dateLastModified', BAD_STATUS,"
             " DELTA))")
    values = ["None"] * size
    # Fast path for the GUID columns: one regex over all of them joined by a separator that
    # the GUID charset excludes (so each segment is exactly one field); only a row that fails
    # it goes through the per-column checks that say which column is wrong.
    guids = [(k, field) for k, field in enumerate(fields)
             if field.column.type == S.GUID and not field.mapping]
    if guids:
        env["GUIDS"] = re.compile(
            "\x1f".join(_GUID_SEGMENT.format(1 if f.required else 0) for _, f in guids),
            re.ASCII).fullmatch
        joined = "\\x1f".join(f"{{f[{f.csv_index}]}}" for _, f in guids)
        emit(f'    if GUIDS(f"{joined}") is not None:')
        for k, field in guids:
            suffix = "" if field.required else " or None"
            emit(f"        c{k} = f[{field.csv_index}]{suffix}")
        emit("    else:")
        for k, field in guids:
            header = repr(field.header)
            emit(f"        c{k} = f[{field.csv_index}]")
            emit(f"        if not c{k}:")
            if field.required:
                emit(f"            P.append(({header}, REQUIRED_MISSING, None))")
            emit(f"            c{k} = None")
            emit(f"        elif guid(c{k}) is None:")
            emit(f"            P.append(({header}, BAD_GUID, None))")
            if field.out_index >= 0:
                values[field.out_index] = f"c{k}"
    guid_ks = {k for k, _ in guids}
    for k, field in enumerate(fields):
        column = field.column
        if k in guid_ks:
            continue
        if mode == "bulk" and field.out_index in (1, 2):
            continue  # bulk status/dateLastModified are empty (checked above)
        var = f"c{k}"
        header = repr(field.header)
        code = repr(F.BAD_CODES[column.type])
        if column.type == S.STRING:
            # Plain strings go straight into the returned tuple: no local, no branch.
            if field.required:
                emit(f"    if not f[{field.csv_index}]: "
                     f"P.append(({header}, REQUIRED_MISSING, None))")
                var = f"f[{field.csv_index}]"
            else:
                var = f"(f[{field.csv_index}] or None)"
        elif column.type == S.BOOLEAN:
            # One dict lookup reads true, false and (when optional) empty.
            table = "BOOL_REQ" if field.required else "BOOL_OPT"
            emit(f"    {var} = {table}(f[{field.csv_index}], BAD)")
            if field.required:
                emit(f"    if {var} is BAD: P.append(({header}, BAD_BOOLEAN if "
                     f"f[{field.csv_index}] else REQUIRED_MISSING, None))")
            else:
                emit(f"    if {var} is BAD: P.append(({header}, BAD_BOOLEAN, None))")
        elif column.type in (S.DATE, S.DATETIME):
            # The memo answers repeated values in one lookup; a miss parses (and memoizes).
            convert = F.converter_for(column)
            env[f"V{k}"] = convert
            env[f"D{k}"] = F.memo_of(convert).get
            text = f"f[{field.csv_index}]"
            emit(f"    {var} = D{k}({text}) or (V{k}({text}) if {text} else None)")
            if field.required:
                emit(f"    if {var} is None: P.append(({header}, REQUIRED_MISSING, None))")
            emit(f"    if {var} is BAD: P.append(({header}, {code}, None))")
        else:
            emit(f"    {var} = f[{field.csv_index}]")
            emit(f"    if {var}:")
            body = _check(column, field, var, k, env)
            for line in body:
                emit(f"        {line}")
            emit(f"        if {var} is BAD: P.append(({header}, {code}, None))")
            emit("    else:")
            if field.required:
                emit(f"        P.append(({header}, REQUIRED_MISSING, None))")
            emit(f"        {var} = None")
        if field.out_index >= 0:
            values[field.out_index] = var
    for start, end, start_header, end_header in date_order:
        a, b = values[start], values[end]
        if a == "None" or b == "None":
            continue
        emit(f"    if not P and {a} is not None and {b} is not None and {a} > {b}:")
        emit(f"        P.append(({end_header!r}, DATE_ORDER, {start_header!r}))")
    if as_list:
        emit(f"    return [{', '.join(values)}]")
    else:
        emit(f"    return ({', '.join(values)},)")
    source = "\n".join(lines) + "\n"
    namespace: dict[str, object] = dict(env)
    # The source is generated from the schema only (see the module docstring).
    exec(compile(source, f"<row plan for {name}>", "exec"), namespace)  # noqa: S102
    return namespace["convert"], source  # type: ignore[return-value]


def _check(column: S.Column, field: Field, var: str, k: int, env: dict) -> list[str]:
    """Statements that turn a non-empty string in ``var`` into its value, or BAD."""
    kind = column.type
    if kind == S.GUID:
        return [f"if guid({var}) is None: {var} = BAD"]
    if kind == S.BOOLEAN:
        env["BOOLEANS"] = {"true": True, "false": False}
        return [f"{var} = BOOLEANS.get({var}, BAD)"]
    if kind == S.ENUM:
        assert column.enum is not None
        env[f"E{k}"] = frozenset(column.enum)
        out = []
        if field.mapping:
            env[f"M{k}"] = dict(field.mapping)
            out.append(f"{var} = M{k}.get({var}, {var})")
        if column.allow_ext:
            out.append(f"if {var} not in E{k} and not ({var}.startswith('ext:') "
                       f"and len({var}) > 4): {var} = BAD")
        else:
            out.append(f"if {var} not in E{k}: {var} = BAD")
        return out
    if kind in (S.DATE, S.DATETIME):
        convert = F.converter_for(column)
        memo = F.memo_of(convert)
        env[f"V{k}"] = convert
        env[f"D{k}"] = memo
        return [f"{var} = D{k}.get({var}) or V{k}({var})"]
    env[f"V{k}"] = F.converter_for(column)
    return [f"{var} = V{k}({var})"]
