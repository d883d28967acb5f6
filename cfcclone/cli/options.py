"""Command-line options generated from the library's own signatures and config dataclasses.

A config dataclass gives one option per field, nested configs flattened (`TrainConfig.optim.lr`
is `--lr`); a function gives one per parameter. The help text is the field's docstring (or the
function's `Args:` line), the choices come from `Literal` types, and the default shown is the
one in the code: no default, choice list or help text is written twice. Options default to
"not given", so `config_from_args` can lay what the user typed over a base config (the
defaults, or a checkpoint's stored TrainConfig).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
from dataclasses import dataclass
from typing import Any

from cfcclone.config import allows_none, base_type, choices, field_docs, replace_path, type_hints

ALIASES = {"game": ("--env",), "core": ("--cell",)}
"""Second spellings of an option: `--env Hopper-v5` as gymnasium's users write it, `--cell ltc`
as ncps's users name the core."""


@dataclass(frozen=True)
class Param:
    """One option: dotted path in the config, type, default and help."""

    path: str
    hint: Any
    default: Any
    doc: str
    group: tuple[str, str] | None = None
    """(title, description) of the nested config the option belongs to, for --help."""

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def function_docs(fn) -> dict[str, str]:
    """`name: text` lines of a docstring's Args: block (continuation lines indented deeper)."""
    doc = inspect.getdoc(fn) or ""
    block = doc.split("Args:", 1)[1] if "Args:" in doc else ""
    docs: dict[str, str] = {}
    name = None
    for line in block.splitlines()[1:]:
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            name, text = match.groups()
            docs[name] = text
        elif line.startswith("        ") and name:
            docs[name] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return docs


def params(obj, skip=(), prefix: str = "", default=None, group=None) -> list[Param]:
    """The options of a config dataclass (its instance `default` gives the defaults; nested
    configs are flattened) or of a function's keyword parameters."""
    if dataclasses.is_dataclass(obj):
        hints, docs, out = type_hints(obj), field_docs(obj), []
        for f in dataclasses.fields(obj):
            path = prefix + f.name
            if path in skip or f.metadata.get("derived"):
                continue
            if default is not None:
                value = getattr(default, f.name)
            elif f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = inspect.Parameter.empty
            kind = base_type(hints[f.name])
            if dataclasses.is_dataclass(kind):
                nested = value if dataclasses.is_dataclass(value) else None
                inner = group or (f"{f.name} options", docs.get(f.name, ""))
                out += params(kind, skip, path + ".", nested, inner)
            else:
                out.append(Param(path, hints[f.name], value, docs.get(f.name, ""), group))
        return out
    sig, docs = inspect.signature(obj), function_docs(obj)
    hints = {k: v for k, v in inspect.get_annotations(obj, eval_str=True).items()}
    return [
        Param(p.name, hints.get(p.name, str), p.default, docs.get(p.name, ""))
        for p in sig.parameters.values()
        if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def add_options(parser: argparse.ArgumentParser, options: list[Param], positional=()) -> None:
    """One argument per Param; `positional` names become positional arguments, and the
    options of a nested config are grouped under its name in --help."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for p in options:
        target = parser
        if p.group is not None:
            title, text = p.group
            if title not in groups:
                groups[title] = parser.add_argument_group(title, text or None)
            target = groups[title]
        kind, options_ = base_type(p.hint), choices(p.hint)
        shown = "" if p.required or p.default in ("", None) else f" (default: {p.default})"
        kw: dict[str, Any] = {"help": (p.doc + shown).strip() or None, "dest": p.path}
        if options_:
            kw["choices"], kind = options_, type(options_[0])
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif kind is dict:
            kw.update(type=_json_object, metavar="JSON")
        elif getattr(kind, "__origin__", None) is list:
            (item,) = getattr(kind, "__args__", (str,))
            kw.update(nargs="+", metavar=p.name.upper(), type=_parser(item, False))
        else:
            kw["type"] = _parser(kind, allows_none(p.hint))
            if not options_:
                kw["metavar"] = p.name.upper()
        if p.name in positional:
            kw.pop("dest")
            target.add_argument(
                p.path, nargs=None if p.required else "?", default=argparse.SUPPRESS, **kw
            )
            continue
        flag = "--" + p.name.replace("_", "-")
        flags = (flag, *ALIASES.get(p.name, ()))
        target.add_argument(*flags, default=argparse.SUPPRESS, required=p.required, **kw)


def _json_object(text: str) -> dict:
    """A JSON object's text as a dict (argparse reports the ValueError on one line)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _parser(kind, optional: bool):
    """The argument's type: int, float or str, where optional also "none" (-> None)."""
    kind = kind if kind in (int, float, str) else str
    if not optional or kind is str:
        return kind

    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def given(args: argparse.Namespace, options: list[Param]) -> dict[str, Any]:
    """The options the user typed, by dotted path ("none" is None where a field allows it)."""
    values = {}
    for p in options:
        if hasattr(args, p.path):
            value = getattr(args, p.path)
            if allows_none(p.hint) and value in ("none", "None"):
                value = None
            values[p.path] = value
    return values


def config_from_args(cls, args: argparse.Namespace, options: list[Param], base=None, **fixed):
    """`base` (default: cls's defaults) with the typed options and `fixed` laid over it."""
    values = {**given(args, options), **fixed}
    if base is None:
        top = {k: v for k, v in values.items() if "." not in k}
        nested = {k for k in values if "." in k}
        base = cls(**top)
        values = {k: values[k] for k in nested}
    return replace_path(base, values)
