"""Packages whose exported names are imported on first use (PEP 562), so that `import cfcclone`
and `cfcclone --help` import no torch.

`lazy_package(__name__, {name: module})` gives the package a module class that resolves each
exported name from its module when it is read. An export keeps its meaning where a submodule of
the same name has been imported since (`cfcclone.rollout` the function, not the module
`cfcclone/rollout.py`, as an eager `from cfcclone.rollout import rollout` made it).
"""

from __future__ import annotations

import importlib
import sys
import types


class _LazyPackage(types.ModuleType):
    def __getattribute__(self, name: str):
        exports = super().__getattribute__("__lazy_exports__")
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        return super().__getattribute__(name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.__lazy_exports__))


def lazy_package(name: str, exports: dict[str, str]) -> None:
    """Make package `name` resolve each of `exports` (exported name -> module) on use."""
    package = sys.modules[name]
    package.__lazy_exports__ = dict(exports)
    package.__class__ = _LazyPackage
