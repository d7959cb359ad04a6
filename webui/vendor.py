"""Copy the web UI's pinned browser libraries from the npm registry into ``webui/vendor/``.

    python -m triolet.webui.vendor            # install the lockfile's versions, copy the files
    python -m triolet.webui.vendor --update   # re-resolve package.json, rewrite the lockfile too

Triolet needs no Node.js to install or run: the few third-party files the browser loads are
committed under ``webui/vendor/``. This script is how they got there, and anyone can rerun it
(it needs ``npm``). It installs ``package.json`` + ``package-lock.json`` in a temporary folder
(``npm ci --ignore-scripts``: exact versions, no install scripts run), then copies only the
files listed in `FILES` plus each package's license, and writes ``vendor/VERSIONS.txt``.
The vendor folder is replaced as a whole, so a file dropped from `FILES` disappears.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
VENDOR: Final = HERE / "vendor"

#: highlight.js languages the UI registers (the rest of its ~190 are not shipped).
LANGUAGES: Final = (
    "bash",
    "c",
    "cpp",
    "css",
    "diff",
    "go",
    "java",
    "javascript",
    "json",
    "markdown",
    "plaintext",
    "python",
    "rust",
    "shell",
    "sql",
    "typescript",
    "xml",
    "yaml",
)

#: package -> (file in the package -> file under vendor/<folder>/), and the folder name.
FILES: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "marked": ("marked", {"lib/marked.esm.js": "marked.esm.js", "LICENSE": "LICENSE"}),
    "dompurify": ("dompurify", {"dist/purify.es.mjs": "purify.es.mjs", "LICENSE": "LICENSE"}),
    "@highlightjs/cdn-assets": (
        "highlight",
        {
            "es/core.min.js": "core.min.js",
            "styles/github.min.css": "github.min.css",
            "styles/github-dark.min.css": "github-dark.min.css",
            "LICENSE": "LICENSE",
            **{f"es/languages/{lang}.min.js": f"languages/{lang}.min.js" for lang in LANGUAGES},
        },
    ),
    # Only the browser tests load axe-core (injected into the page); it is never served to users
    # by the UI itself, but it ships so the accessibility check runs without Node as well.
    "axe-core": ("axe-core", {"axe.min.js": "axe.min.js", "LICENSE": "LICENSE"}),
}


def _npm(args: list[str], cwd: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to vendor the web UI's libraries (only for this script)")
    subprocess.run([npm, *args, "--ignore-scripts", "--no-audit", "--no-fund"], cwd=cwd, check=True)


def vendor(update: bool = False) -> list[str]:
    """Install the pinned packages in a temporary folder and copy `FILES`; return the versions."""
    with tempfile.TemporaryDirectory(prefix="triolet-vendor-") as tmp:
        work = Path(tmp)
        shutil.copy2(HERE / "package.json", work / "package.json")
        lock = HERE / "package-lock.json"
        if update or not lock.exists():
            _npm(["install"], work)
            shutil.copy2(work / "package-lock.json", lock)
        else:
            shutil.copy2(lock, work / "package-lock.json")
            _npm(["ci"], work)
        staged = work / "vendor"
        versions = []
        for package, (folder, files) in FILES.items():
            source = work / "node_modules" / package
            meta = json.loads((source / "package.json").read_text(encoding="utf-8"))
            versions.append(f"{package} {meta['version']} ({meta.get('license', '?')})")
            for inside, target in files.items():
                destination = staged / folder / target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / inside, destination)
        (staged / "VERSIONS.txt").write_text(
            "Copied by `python -m triolet.webui.vendor` from the npm registry; do not edit.\n"
            + "\n".join(versions)
            + "\n",
            encoding="utf-8",
        )
        if VENDOR.exists():
            shutil.rmtree(VENDOR)
        shutil.copytree(staged, VENDOR)
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--update", action="store_true", help="re-resolve package.json and rewrite the lockfile"
    )
    args = parser.parse_args(argv)
    for line in vendor(update=args.update):
        print(line)
    print(f"vendored into {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
