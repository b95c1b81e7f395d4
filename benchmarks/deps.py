"""Install the benchmark-only requirements into the running interpreter's environment."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")


def _lines() -> list[str]:
    text = REQUIREMENTS.read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _satisfied(line: str) -> bool:
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip vendors packaging, but a bare venv may not have it: name only
        name = line.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        try:
            version(name)
        except PackageNotFoundError:
            return False
        return True
    req = Requirement(line)
    try:
        found = version(req.name)
    except PackageNotFoundError:
        return False
    return req.specifier.contains(found, prereleases=True)


def ensure() -> None:
    """pip-install every line of requirements.txt that is not satisfied yet."""
    missing = [line for line in _lines() if not _satisfied(line)]
    if not missing:
        return
    print(f"benchmarks: installing {', '.join(missing)}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
    importlib.invalidate_caches()
