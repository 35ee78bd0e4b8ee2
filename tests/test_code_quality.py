"""Style and types are part of the suite, so a green run means a clean tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff() -> None:
    lint = run(sys.executable, "-m", "ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout
    fmt = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


def test_mypy_strict() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout


def test_every_package_is_in_the_distribution() -> None:
    """pyproject's explicit package list names every package with an ``__init__.py``: an
    editable install (as the suite runs) would hide one left out, a wheel would lack it."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
            "packages"
        ]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "portkey_mw").rglob("__init__.py")
    }
    found |= {
        ".".join(("portkey_mw_plugins", *p.parent.relative_to(ROOT / "plugins").parts))
        for p in (ROOT / "plugins").rglob("__init__.py")
    }
    assert found == listed, f"missing: {sorted(found - listed)}, extra: {sorted(listed - found)}"
