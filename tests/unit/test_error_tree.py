"""Every exception class Argus defines descends from core.errors.ArgusError, so each transport
maps it through the one table in core/transport_errors.py and callers can tell whether a retry
helps."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from core.errors import ArgusError

PACKAGES = ("core", "command_side", "projectors", "query_side", "agent", "argus")


def test_every_exception_class_is_in_the_argus_error_tree() -> None:
    outside: list[str] = []
    seen = 0
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if not (inspect.isclass(value) and issubclass(value, BaseException)):
                    continue
                if value.__module__ != module.__name__:
                    continue  # imported, checked where it is defined
                seen += 1
                if not issubclass(value, ArgusError):
                    outside.append(f"{module.__name__}.{name}")
    assert seen > 10, "the walk found the error classes"
    assert outside == [], f"exception classes outside the core/errors.py tree: {outside}"
