"""Demo parameters: declared by a comment on a top-level assignment, validated against
the declaration, written into a copy of the code; and the bundled demos' declarations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from indexer.demo_params import (
    ParamDeclarationError,
    ParamValueError,
    checked_values,
    declared_params,
    read_params,
    with_values,
)

REPO = Path(__file__).resolve().parents[2]

SOURCE = '''"""A demo. Writing `X = 1  # askta: param` in a docstring declares nothing."""
import torch

LR = 0.1  # askta: param(label="Learning rate", min=0.001, max=1.0, step=0.001)
# a comment of its own above a declaration
BATCH = 32  # askta: param(label="Batch size", min=8, max=256, step=8)
ACT = "relu"  # askta: param(label="Activation", choices=["relu", "tanh", "none"])
PLOT = True  # askta: param
SHIFT = -1.5  # askta: param(label="Shift — µ", min=-3, max=3)
print(LR, BATCH, ACT, PLOT, SHIFT)
'''


def test_declarations_give_typed_params_for_the_entry_json() -> None:
    params = declared_params(SOURCE)
    assert [p.to_json() for p in params] == [
        {"name": "LR", "label": "Learning rate", "type": "float", "min": 0.001, "max": 1.0,
         "step": 0.001, "choices": None, "default": 0.1},
        {"name": "BATCH", "label": "Batch size", "type": "int", "min": 8, "max": 256,
         "step": 8, "choices": None, "default": 32},
        {"name": "ACT", "label": "Activation", "type": "choice", "min": None, "max": None,
         "step": None, "choices": ["relu", "tanh", "none"], "default": "relu"},
        {"name": "PLOT", "label": "PLOT", "type": "bool", "min": None, "max": None,
         "step": None, "choices": None, "default": True},
        {"name": "SHIFT", "label": "Shift — µ", "type": "float", "min": -3, "max": 3,
         "step": 0.06, "choices": None, "default": -1.5},
    ]


def test_values_are_written_into_a_copy_and_nothing_else_changes() -> None:
    params = declared_params(SOURCE)
    values = checked_values(params, {"LR": 1, "BATCH": 64, "ACT": "tanh", "PLOT": False,
                                     "SHIFT": 2.25})
    assert values["LR"] == 1.0 and isinstance(values["LR"], float)
    code = with_values(SOURCE, params, values)
    changed = [(a, b) for a, b in zip(SOURCE.splitlines(), code.splitlines(), strict=True)
               if a != b]
    assert [b.split("  #")[0] for _, b in changed] == [
        "LR = 1.0", "BATCH = 64", "ACT = 'tanh'", "PLOT = False", "SHIFT = 2.25"]
    assert all(a.split("  #")[1] == b.split("  #")[1] for a, b in changed)  # comments kept
    assert with_values(SOURCE, params, {}) == SOURCE
    namespace: dict[str, Any] = {}
    runnable = code.replace("import torch\n", "").replace("print(", "list([")
    exec(compile(runnable.replace("SHIFT)", "SHIFT])"), "demo", "exec"), namespace)
    assert (namespace["LR"], namespace["BATCH"], namespace["SHIFT"]) == (1.0, 64, 2.25)


@pytest.mark.parametrize(("values", "field", "message"), [
    ({"BATCH": 12}, "params.BATCH", "8 plus a multiple of 8"),
    ({"BATCH": 512}, "params.BATCH", "between 8 and 256"),
    ({"BATCH": 16.0}, "params.BATCH", "whole number"),
    ({"BATCH": True}, "params.BATCH", "whole number"),
    ({"LR": "0.1"}, "params.LR", "a number"),
    ({"LR": float("nan")}, "params.LR", "a number"),
    ({"LR": 0}, "params.LR", "between 0.001 and 1.0"),
    ({"ACT": "sigmoid"}, "params.ACT", "one of relu, tanh, none"),
    ({"PLOT": 1}, "params.PLOT", "true or false"),
    ({"__import__('os')": 1}, "params.__import__('os')", "no parameter"),
])
def test_values_outside_the_declaration_are_refused_naming_the_field(
        values: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ParamValueError) as e:
        checked_values(declared_params(SOURCE), values)
    assert e.value.field == field
    assert message in e.value.message


@pytest.mark.parametrize(("source", "line", "message"), [
    ("A = 1\nB = 1 + 2  # askta: param(min=0, max=5)", 2, "not an expression"),
    ("B = 3  # askta: param(min=0, max=2)", 1, "outside min..max"),
    ("B = 3  # askta: param(min=5, max=2)", 1, "min < max"),
    ("B = 3  # askta: param", 1, "needs min=... and max"),
    ("B = 3  # askta: param(min=0, max=9, step=0.5)", 1, "must be ints"),
    ("B = 'a'  # askta: param", 1, "give choices"),
    ("B = 'a'  # askta: param(choices=['a', 'a'])", 1, "distinct"),
    ("B = 'c'  # askta: param(choices=['a', 'b'])", 1, "not one of its choices"),
    ("B = [1]  # askta: param", 1, "an int, a float, a bool or a string"),
    ("B = 1  # askta: param(mn=0)", 1, "unknown option 'mn'"),
    ("B = 1  # askta: param(0, 5)", 1, "options are named"),
    ("B = 1  # askta: param(min=0, max=5", 1, "write the options as"),
    ("B = True  # askta: param(min=0)", 1, "takes no min"),
    ("def f():\n    B = 1  # askta: param(min=0, max=3)", 2, "top-level assignment"),
    ("A, B = 1, 2  # askta: param(min=0, max=3)", 1, "one name"),
    ("B = 1  # askta: param(min=0, max=3)\nB = 2  # askta: param(min=0, max=3)", 2,
     "declared twice"),
    ("B = (\n  1)  # askta: param(min=0, max=3)", 2, "top-level assignment"),
    ("B = 1  # askta: param(min=0, max=3)\ndef (", 2, "does not parse"),
])
def test_a_broken_declaration_says_which_line_and_why(source: str, line: int,
                                                       message: str) -> None:
    with pytest.raises(ParamDeclarationError) as e:
        declared_params(source)
    assert e.value.line == line
    assert message in e.value.message


def test_the_bundled_demos_declare_parameters() -> None:
    declared = {p.name: read_params(p) for p in sorted((REPO / "demos").glob("*.py"))}
    with_params = [name for name, params in declared.items() if params]
    assert len(with_params) >= 8, with_params
    for name in ("mse_vs_outliers.py", "weight_initialization.py", "minibatch_noise.py"):
        assert any(p.name != "SEED" for p in declared[name]), name
