"""Every rule module in this package is imported here; each Rule subclass with a code is a rule.

Rule families live in their own modules (registration.py for TL1xx, calls.py and modes.py for
TL2xx/TL3xx, devices.py for TL4xx). Adding a module with rules is all it takes to register them.
"""

from __future__ import annotations

import importlib
import pkgutil

from torchlint.rule import Rule


def _discover() -> list[type[Rule]]:
    found: dict[str, type[Rule]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Rule) and value.code and value.__module__ == module.__name__:
                if value.code in found and found[value.code] is not value:
                    raise RuntimeError(f"two rules claim {value.code}")
                found[value.code] = value
    return sorted(found.values(), key=lambda r: r.code)


RULES: list[type[Rule]] = _discover()
