"""Package list for setuptools: the top-level folders become `triolet.*`.

pyproject.toml maps each folder to its import name with `package-dir`; this
file walks the folders with `find_packages` so that every subpackage lands in
the wheel (setuptools silently leaves out any subpackage that is not listed).
"""

from setuptools import find_packages, setup

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


def _packages() -> list[str]:
    packages = []
    for name, folder in FOLDERS.items():
        packages.append(name)
        packages.extend(f"{name}.{sub}" for sub in find_packages(folder))
    return packages


setup(packages=_packages(), package_dir=FOLDERS)
