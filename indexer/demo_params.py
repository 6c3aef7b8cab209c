"""A demo's knobs: module-level constants that a student may change before a run.

A demo declares a parameter with a comment on the line of an ordinary assignment,
so the file still runs with plain `python demos/x.py`:

    LEARNING_RATE = 0.1  # askta: param(label="Learning rate", min=0.001, max=1.0, step=0.001)
    BATCH_SIZE = 32      # askta: param(label="Batch size", min=1, max=256)
    ACTIVATION = "relu"  # askta: param(label="Activation", choices=["relu", "tanh", "none"])
    SHOW_GRID = True     # askta: param(label="Show the grid")

The type comes from the value: an int, a float, a bool, or a string (which needs
`choices`). Numbers need `min` and `max`; `step` defaults to 1 for an int and to a
hundredth of the range for a float. `label` defaults to the name.

A run with other values gets a copy of the code whose declared values are replaced,
each by the literal of its validated value (`with_values`): nothing else of the
file changes, and no value that was not declared, or is out of its range, gets in.
"""

from __future__ import annotations

import ast
import functools
import io
import math
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = re.compile(r"#\s*askta:\s*param\b(?P<call>.*)$")
ALLOWED_KEYS = {"label", "min", "max", "step", "choices"}
MAX_PARAMS = 12
MAX_CHOICES = 20
MAX_TEXT = 80


class ParamDeclarationError(ValueError):
    """A declaration that cannot be used; `line` (1-based) is where it is."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class ParamValueError(ValueError):
    """A value a run may not use; `field` names the parameter (or `params`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class DemoParam:
    """One declared parameter, as the entry JSON shows it, and where its value sits."""

    name: str
    label: str
    type: str  # "int" | "float" | "bool" | "choice"
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    # where the assigned value is in the file: (line, start column, end column), 1-based
    # line, character columns; a value spans one line
    span: tuple[int, int, int] = field(default=(0, 0, 0), compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "type": self.type,
                "min": self.min, "max": self.max, "step": self.step,
                "choices": list(self.choices) if self.choices is not None else None,
                "default": self.default}


def declared_params(source: str) -> list[DemoParam]:
    """The parameters a demo's source declares, in file order; ParamDeclarationError for
    the first declaration that cannot be used (and for a file that does not parse)."""
    if "askta" not in source:
        return []
    try:
        tree = ast.parse(source)
        marked = _marked_comments(source)
    except (SyntaxError, tokenize.TokenError) as e:
        line = getattr(e, "lineno", None) or 1
        raise ParamDeclarationError(line, f"the file does not parse ({e})") from e
    if not marked:
        return []
    lines = [line.rstrip("\r\n") for line in _lines(source)]
    assignments = {node.lineno: node for node in tree.body
                   if isinstance(node, ast.Assign | ast.AnnAssign)}
    params: list[DemoParam] = []
    for line, match in marked.items():
        node = assignments.get(line)
        if node is None:
            raise ParamDeclarationError(line, "'# askta: param' must end a top-level "
                                              "assignment, like `LR = 0.1  # askta: param(...)`")
        param = _param(node, lines[line - 1], match.group("call").strip(), line)
        if any(p.name == param.name for p in params):
            raise ParamDeclarationError(line, f"{param.name} is declared twice")
        params.append(param)
    if len(params) > MAX_PARAMS:
        raise ParamDeclarationError(params[MAX_PARAMS].span[0],
                                    f"at most {MAX_PARAMS} parameters per demo")
    return params


def _marked_comments(source: str) -> dict[int, re.Match[str]]:
    """{line: match} of the comments that declare a parameter (real comments only: the
    same words inside a string or a docstring declare nothing)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: m for tok in tokens
            if tok.type == tokenize.COMMENT and (m := MARKER.match(tok.string))}


def _param(node: ast.Assign | ast.AnnAssign, text: str, call: str, line: int) -> DemoParam:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if len(targets) != 1 or not isinstance(targets[0], ast.Name) or node.value is None:
        raise ParamDeclarationError(line, "a parameter is one name assigned one value, "
                                          "like `LR = 0.1`")
    name, value = targets[0].id, node.value
    if value.lineno != value.end_lineno:
        raise ParamDeclarationError(line, f"the value of {name} must fit on its line")
    try:
        default = ast.literal_eval(value)
    except ValueError:
        raise ParamDeclarationError(line, f"the value of {name} must be a number, True/False "
                                          "or a string, not an expression") from None
    options = _options(call, line)
    kind = _kind(default)
    if kind is None:
        raise ParamDeclarationError(line, f"{name} must be an int, a float, a bool or a "
                                          f"string, not {type(default).__name__}")
    label = options.get("label", name)
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_TEXT:
        raise ParamDeclarationError(line, f"label of {name}: a short text, up to "
                                          f"{MAX_TEXT} characters")
    start = _char_col(text, value.col_offset)
    end = _char_col(text, value.end_col_offset or value.col_offset)
    label, span = label.strip(), (line, start, end)
    if kind == "bool":
        _no_extra(options, {"label"}, name, line)
        return DemoParam(name, label, "bool", default, span=span)
    if kind == "choice":
        _no_extra(options, {"label", "choices"}, name, line)
        choices = options.get("choices")
        if (not isinstance(choices, list | tuple) or not 2 <= len(choices) <= MAX_CHOICES
                or not all(isinstance(c, str) and 0 < len(c) <= MAX_TEXT for c in choices)
                or len(set(choices)) != len(choices)):
            raise ParamDeclarationError(line, f"{name} is a string: give choices=[...], "
                                              f"2 to {MAX_CHOICES} distinct short strings")
        if default not in choices:
            raise ParamDeclarationError(line, f"the value of {name}, {default!r}, is not one "
                                              "of its choices")
        return DemoParam(name, label, "choice", default, choices=tuple(choices), span=span)
    _no_extra(options, {"label", "min", "max", "step"}, name, line)
    lo, hi = options.get("min"), options.get("max")
    if not _is_number(lo) or not _is_number(hi) or not lo < hi:  # type: ignore[operator]
        raise ParamDeclarationError(line, f"{name} needs min=... and max=..., numbers with "
                                          "min < max")
    assert isinstance(lo, int | float) and isinstance(hi, int | float)
    step = options.get("step", 1 if kind == "int" else (hi - lo) / 100)
    if not _is_number(step) or step <= 0:
        raise ParamDeclarationError(line, f"step of {name} must be a number above 0")
    if kind == "int" and not all(isinstance(v, int) for v in (lo, hi, step)):
        raise ParamDeclarationError(line, f"{name} is an int: min, max and step must be ints")
    if not lo <= default <= hi:
        raise ParamDeclarationError(line, f"the value of {name}, {default}, is outside "
                                          f"min..max ({lo}..{hi})")
    return DemoParam(name, label, kind, default, min=lo, max=hi, step=step, span=span)


def _options(call: str, line: int) -> dict[str, Any]:
    """`(label="x", min=1)` -> {"label": "x", "min": 1}; nothing after `param` -> {}."""
    if not call:
        return {}
    try:
        expr = ast.parse("param" + call, mode="eval").body
    except SyntaxError:
        raise ParamDeclarationError(line, "write the options as param(label=\"...\", min=..., "
                                          "max=...)") from None
    if not isinstance(expr, ast.Call) or expr.args:
        raise ParamDeclarationError(line, "options are named: param(label=\"...\", min=...)")
    options: dict[str, Any] = {}
    for kw in expr.keywords:
        if kw.arg not in ALLOWED_KEYS:
            raise ParamDeclarationError(line, f"unknown option {kw.arg!r}: use "
                                              f"{', '.join(sorted(ALLOWED_KEYS))}")
        try:
            options[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            raise ParamDeclarationError(line, f"option {kw.arg} must be a literal "
                                              "(a number, a string or a list)") from None
    return options


def _no_extra(options: Mapping[str, Any], allowed: set[str], name: str, line: int) -> None:
    extra = sorted(set(options) - allowed)
    if extra:
        raise ParamDeclarationError(line, f"{name} takes no {', '.join(extra)}")


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float" if math.isfinite(value) else None
    if isinstance(value, str):
        return "choice"
    return None


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _char_col(text: str, byte_col: int) -> int:
    """ast's columns count UTF-8 bytes; strings count characters."""
    return len(text.encode("utf-8")[:byte_col].decode("utf-8", "replace"))


def checked_values(params: list[DemoParam], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of a run, validated against the declarations: unknown names, wrong
    types, values out of range or off the int step raise ParamValueError naming the
    field. An int value is accepted for a float parameter (as a float)."""
    declared = {p.name: p for p in params}
    out: dict[str, Any] = {}
    for name, value in values.items():
        p = declared.get(name)
        if p is None:
            known = ", ".join(declared) or "none"
            raise ParamValueError(f"params.{name}", f"this demo has no parameter {name!r} "
                                                   f"(it has: {known})")
        out[name] = _checked(p, value)
    return out


def _checked(p: DemoParam, value: Any) -> Any:
    where = f"params.{p.name}"
    if p.type == "bool":
        if not isinstance(value, bool):
            raise ParamValueError(where, "must be true or false")
        return value
    if p.type == "choice":
        assert p.choices is not None
        if not isinstance(value, str) or value not in p.choices:
            raise ParamValueError(where, f"must be one of {', '.join(p.choices)}")
        return value
    if p.type == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParamValueError(where, "must be a whole number")
    elif not _is_number(value):
        raise ParamValueError(where, "must be a number")
    assert p.min is not None and p.max is not None and p.step is not None
    if not p.min <= value <= p.max:
        raise ParamValueError(where, f"must be between {p.min} and {p.max}")
    if p.type == "int" and (value - p.min) % p.step:
        raise ParamValueError(where, f"must be {p.min} plus a multiple of {p.step}")
    return float(value) if p.type == "float" else value


def with_values(source: str, params: list[DemoParam], values: Mapping[str, Any]) -> str:
    """The source with the declared values replaced by `values` (already checked by
    checked_values): each value's literal written where the old one was."""
    lines = _lines(source)
    for p in params:
        if p.name not in values:
            continue
        line, start, end = p.span
        text = lines[line - 1]
        lines[line - 1] = text[:start] + repr(values[p.name]) + text[end:]
    return "".join(lines)


def _lines(source: str) -> list[str]:
    """The lines as Python numbers them (\n, \r\n or \r ends one; str.splitlines
    would also split at form feeds and other characters the parser keeps in a line)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", source)


def read_params(path: Path) -> list[DemoParam]:
    """The parameters a demo file declares (cached until the file changes); OSError when
    it cannot be read, ParamDeclarationError when a declaration cannot be used."""
    st = path.stat()
    return list(_read_params(str(path), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=256)
def _read_params(path: str, mtime_ns: int, size: int) -> tuple[DemoParam, ...]:
    return tuple(declared_params(Path(path).read_text(encoding="utf-8")))
