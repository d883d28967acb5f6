"""Each command's options, parsed by tyro from the library's own signatures and configs.

A command's options are the keyword parameters of the library call behind it, or a config
dataclass (nested configs flattened: `TrainConfig.optim.lr` is `--lr`), plus a few of the
command's own, declared as a small dataclass with field docstrings. tyro reads the types,
defaults and docstrings, so no default, choice list or help text is written twice. What tyro
cannot know is said here: a config's derived fields are no options, a dict takes a JSON
object, and `game` and `core` have a second spelling.

    values = parse("train", [Options(TrainConfig, name="train", base=base)], argv)

A config's default is an instance, `base`: the defaults, or a checkpoint's stored TrainConfig,
so that `--init` and `--resume` lay the options typed over what was stored.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import docstring_parser
import tyro
from tyro.constructors import (
    MISSING_NONPROP,
    ConstructorRegistry,
    PrimitiveConstructorSpec,
    PrimitiveTypeInfo,
    StructConstructorSpec,
    StructFieldSpec,
    StructTypeInfo,
)

from cfcclone.config import Config, field_docs, type_hints

ALIASES = {"game": ("--env",), "core": ("--cell",)}
"""Second spellings of an option: `--env Hopper-v5` as gymnasium's users write it, `--cell ltc`
as ncps's users name the core."""


@dataclass(frozen=True)
class Options:
    """One part of a command's options, by its `source`:
    - a function: its keyword parameters, less `skip`, the `positional` ones by position;
    - a `Config` dataclass: its fields, nested ones flattened, defaulting to instance `base`;
    - any other dataclass: the command's own options, its fields (the value an instance);
    - with `spread`, a config's fields likewise (the value their dict).
    The part's value is `name`'s in what `parse` returns (a function's are spread out)."""

    source: Any
    name: str = "config"
    base: Any = None
    skip: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    hidden: frozenset = frozenset()
    """(class, field) pairs of a config that the command sets itself: no options."""
    defaults: dict = dataclasses.field(default_factory=dict)
    """(class, field): default, where the command decides a field's default (DAgger's recipe
    is its --init's)."""
    spread: bool = False
    """A config's fields (less `skip`) as options of their own, and the part's value their
    dict: keyword arguments for a call that builds the config itself (collect's env)."""
    overlay: tuple[str, ...] = ()
    """Only these fields of the config, each defaulting to None: "not typed, keep the value
    stored" (eval's changes to a checkpoint's env). The part's value is their dict."""


def parse(command: str, parts: list[Options], argv: list[str]) -> dict[str, Any]:
    """The values of the options of `parts` of `cfcclone command`, parsed from `argv`. Exits
    with tyro's usage error, naming the option, on bad input (status 2, as argparse)."""
    from cfcclone.cli import SUMMARY

    prog, description = f"cfcclone {command}", SUMMARY[command]
    params, docs, flat = [], {}, {}
    for part in parts:
        if part.overlay:
            options = _overlay(part.source, part.overlay)
        elif _is_config(part.source) and not part.spread:
            base = part.base if part.base is not None else inspect.Parameter.empty
            kind = Annotated[part.source, tyro.conf.OmitArgPrefixes, tyro.conf.AvoidSubcommands]
            options = [(_param(part.name, kind, base), "")]
        elif dataclasses.is_dataclass(part.source):
            options = list(_signature(part.source, part.skip, docs=field_docs(part.source)))
        else:
            options = list(_signature(part.source, part.skip, part.positional))
        flat[part.name] = [p.name for p, _ in options]
        for p, doc in options:
            params.append(p)
            docs[p.name] = " ".join(doc.split())

    def command(**values):
        return values

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = f"{description}\n\nArgs:\n" + "".join(
        f"    {name}: {doc}\n" for name, doc in docs.items()
    )
    hidden = frozenset().union(*(p.hidden for p in parts))
    defaults = {k: v for p in parts for k, v in p.defaults.items()}
    with _registry(hidden, defaults):
        values = tyro.cli(
            command,
            prog=prog,
            description=description,
            args=argv,
            config=(tyro.conf.PositionalMetavarFromFieldName,),
        )
    values = {name: _built(value) for name, value in values.items()}
    for part in parts:
        if part.overlay or part.spread:
            values[part.name] = {n: values.pop(n) for n in flat[part.name]}
        elif dataclasses.is_dataclass(part.source) and not _is_config(part.source):
            values[part.name] = part.source(**{n: values.pop(n) for n in flat[part.name]})
    return values


def call(command: str, fn, argv: list[str], positional=(), skip=("progress",)):
    """`fn` called with the options parsed from argv: its own keyword parameters."""
    return fn(**parse(command, [Options(fn, skip=skip, positional=positional)], argv))


def peek(argv: list[str], *flags: str, switches=()) -> argparse.Namespace:
    """The values of `flags` (and of the `switches`, flags without a value, --help among
    them) in argv, before the full parse: what decides the defaults of the other options (a
    checkpoint's recipe)."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("-h", "--help", action="store_true")
    for flag in flags:
        p.add_argument(flag)
    for flag in switches:
        p.add_argument(flag, action="store_true")
    return p.parse_known_args(argv)[0]


def _is_config(source) -> bool:
    return isinstance(source, type) and issubclass(source, Config)


def _param(name: str, hint, default, hint_text: str | None = None) -> inspect.Parameter:
    """A keyword parameter for tyro, with its second spelling and its default's description."""
    if name in ALIASES or hint_text:
        hint = Annotated[
            hint, tyro.conf.arg(aliases=ALIASES.get(name), help_behavior_hint=hint_text)
        ]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)


def _signature(fn, skip=(), positional=(), docs=None):
    """(parameter, help) of each keyword parameter of `fn` (a function or a dataclass), its
    annotation resolved (an unannotated one takes its default's type, a path is text) and the
    `positional` ones marked so."""
    hints = typing.get_type_hints(fn, include_extras=True)
    if docs is None:
        parsed = docstring_parser.parse(fn.__doc__ or "").params
        docs = {p.arg_name: p.description or "" for p in parsed}
    for p in inspect.signature(fn).parameters.values():
        if p.name in skip or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        hint = hints.get(p.name, str if p.default in (p.empty, None) else type(p.default))
        if Path in typing.get_args(hint):  # str | Path
            hint = str | None if type(None) in typing.get_args(hint) else str
        if p.name in positional:
            hint = tyro.conf.Positional[hint]
        yield _param(p.name, hint, p.default), docs.get(p.name, "")


def _overlay(cls, names) -> list[tuple[inspect.Parameter, str]]:
    """Fields `names` of `cls` as options that default to None, "the value stored"."""
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    hint = "(default: the checkpoint's)"
    return [(_param(n, hints[n] | None, None, hint), docs[n]) for n in names]


def _registry(hidden: frozenset, defaults: dict) -> ConstructorRegistry:
    """tyro's rules for cfcclone: a config's derived fields and the `hidden` (class, field)
    pairs are no options, `defaults` replace fields' own; a dict is typed as JSON."""
    registry = ConstructorRegistry()

    @registry.struct_rule
    def config_rule(info: StructTypeInfo):
        if not _is_config(info.type):
            return None
        hints, docs = type_hints(info.type), field_docs(info.type)
        base = info.default if isinstance(info.default, info.type) else None
        fields = []
        for f in dataclasses.fields(info.type):
            key, hint = (info.type, f.name), hints[f.name]
            if base is not None:
                default = getattr(base, f.name)
            elif key in defaults:
                default = defaults[key]
            elif f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = MISSING_NONPROP  # required
            if f.metadata.get("derived") or key in hidden:
                hint = tyro.conf.Suppress[hint]
            else:
                hint = _param(f.name, hint, None).annotation
            fields.append(StructFieldSpec(f.name, hint, default, docs.get(f.name)))
        build = lambda **values: _Pending(info.type, values)  # noqa: E731
        return StructConstructorSpec(instantiate=build, fields=tuple(fields))

    @registry.primitive_rule
    def json_object(info: PrimitiveTypeInfo):
        if info.type_origin is not dict:
            return None
        return PrimitiveConstructorSpec(
            nargs=1,
            metavar="JSON",
            instance_from_str=lambda args: _json_object(args[0]),
            is_instance=lambda x: isinstance(x, dict),
            str_from_instance=lambda x: [json.dumps(x)],
        )

    return registry


@dataclass(frozen=True)
class _Pending:
    """A config as tyro parsed it, built once tyro has returned: a config's own ValueError
    ("expected envs >= 1") then reaches the command line's one-line report."""

    cls: type
    values: dict


def _built(value):
    if isinstance(value, _Pending):
        return value.cls(**{k: _built(v) for k, v in value.values.items()})
    return value


def _json_object(text: str) -> dict:
    """A JSON object's text as a dict (tyro reports the ValueError as the option's error)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {text!r}")
    return value
