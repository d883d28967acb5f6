"""What every config dataclass shares: strict dict round trips, choices, field docs.

The configs themselves live with what they configure (`EnvConfig` in envs, `PolicyConfig` in
models, `TrainConfig` in training, `Manifest` in data.format). Each is a dataclass whose fields
carry a docstring (the string right under the field), and whose choices are `Literal` types:
`cfcclone.cli` builds the command line from exactly these, so no default, choice list or help
text is written twice.

    @dataclass(frozen=True)
    class Example(Config):
        mode: Literal["a", "b"] = "a"
        \"\"\"How it is done.\"\"\"

    Example.from_dict({"mode": "c"})   # ValueError: Example.mode: expected one of ['a', 'b']
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import numbers
import textwrap
import types
import typing
from typing import Any, Literal


class Config:
    """Mixin for config dataclasses: `to_dict`, strict `from_dict`, and `check_choices`."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str | None = None):
        """Rebuild from `to_dict`'s output. Unknown or missing fields, a value that is not a
        dict, or a value of the wrong type raise a ValueError naming the field."""
        where = where or cls.__name__
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(
                f"{where}: unknown fields {unknown}; expected some of {sorted(fields)}"
            )
        missing = sorted(
            name
            for name, f in fields.items()
            if name not in d
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        )
        if missing:
            raise ValueError(f"{where}: missing fields {missing}")
        hints = type_hints(cls)
        values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in d.items()}
        try:
            return cls(**values)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None

    def check_choices(self) -> None:
        """Raise a ValueError for a field whose value is not one of its Literal's choices."""
        for name, hint in type_hints(type(self)).items():
            options = choices(hint)
            value = getattr(self, name)
            if options and value not in options and not (value is None and allows_none(hint)):
                raise ValueError(f"unknown {name} {value!r}; expected one of {list(options)}")


def is_int(value) -> bool:
    """An integer (numpy's too), not a bool: what a count field of a config accepts."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless `condition`: the one-line check of a config field."""
    if not condition:
        raise ValueError(message)


@functools.cache
def type_hints(cls) -> dict[str, Any]:
    """The resolved annotations of a dataclass's fields."""
    return typing.get_type_hints(cls)


def _union_args(hint) -> tuple:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def allows_none(hint) -> bool:
    return type(None) in _union_args(hint)


def base_type(hint):
    """`int | None` -> int; a Literal stays itself."""
    args = [a for a in _union_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def choices(hint) -> tuple:
    """The values of a Literal (or optional Literal) type; () for any other type."""
    hint = base_type(hint)
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


def _coerce(value, hint, where: str):
    """A JSON value as the field's type: nested configs rebuilt, ints accepted as floats,
    tuples from lists; anything else of the wrong type is refused."""
    if value is None:
        if allows_none(hint):
            return None
        raise ValueError(f"{where}: expected a value, got null")
    kind = base_type(hint)
    if dataclasses.is_dataclass(kind) and issubclass(kind, Config):
        return kind.from_dict(value, where)
    if choices(kind):
        return value  # checked against the choices by the config's own validation
    origin = typing.get_origin(kind) or kind
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin in (int, float, str, bool, list, dict, tuple):
        ok = isinstance(value, origin) and not (origin is int and isinstance(value, bool))
        if not ok:
            raise ValueError(f"{where}: expected {origin.__name__}, got {value!r}")
    return value


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """Each field's docstring (the string literal right below it), for --help and errors."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def replace_path(config, values: dict[str, Any]):
    """`config` with fields replaced by dotted path: {"optim.lr": 1e-3, "epochs": 2}."""
    flat: dict[str, Any] = {}
    nested: dict[str, dict] = {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[head] = value
    for head, inner in nested.items():
        flat[head] = replace_path(getattr(config, head), inner)
    return dataclasses.replace(config, **flat)
