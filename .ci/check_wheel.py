"""Import every module of the built wheel, and check no source package is missing.

Run with the interpreter of a fresh virtualenv that has only the wheel (and
its extras) installed, from outside the source tree, so that nothing can be
imported from the checkout by accident.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import zipfile

FOLDERS = {
    "triolet": "triolet",
    "triolet.actors": "actors",
    "triolet.supervisor": "supervisor",
    "triolet.transport": "transport",
    "triolet.storage": "storage",
    "triolet.bridges": "bridges",
    "triolet.webui": "webui",
    "triolet.benchmarks": "benchmarks",
}


def main() -> int:
    wheel, source = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(
        name[:-3].replace("/", ".").removesuffix(".__init__")
        for name in names
        if name.endswith(".py") and name.startswith("triolet/")
    )
    expected = set()
    for package, folder in FOLDERS.items():
        for path in (source / folder).rglob("*.py"):
            if "vendor" in path.parts or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(source / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            expected.add(".".join([package, *parts]))
    missing = sorted(expected - set(modules))
    for asset in (
        "triolet/webui/index.html",
        "triolet/webui/app/chat.js",
        "triolet/webui/vendor/marked/marked.esm.js",
    ):
        if asset not in names:
            missing.append(asset)
    if missing:
        print("the wheel misses these modules:", *missing, sep="\n  ")
        return 1
    for module in modules:
        if module.endswith(".__main__"):
            continue  # importing it would run the program
        importlib.import_module(module)
    imported_from = pathlib.Path(importlib.import_module("triolet").__file__ or "").resolve()
    if source.resolve() in imported_from.parents:
        print(f"triolet was imported from the checkout ({imported_from}), not the wheel")
        return 1
    print(f"imported all {len(modules)} modules of {wheel.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
