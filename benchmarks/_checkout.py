"""Running another checkout of portkey-mw beside this one, for ``--compare`` measurements."""

from __future__ import annotations

import tempfile
from pathlib import Path


def checkout_environment(checkout: str) -> tuple[dict[str, str], Path]:
    """The environment additions and working directory that make ``python -m portkey_mw``
    run the code of ``checkout`` (say a ``git worktree`` of an earlier commit).

    The checkout goes first on ``PYTHONPATH`` through a folder of links, its ``plugins``
    folder under the package name the entry points use (``portkey_mw_plugins``); the
    working directory is that folder too, since ``python -m`` puts it first on the path.
    """
    root = Path(checkout).resolve()
    links = Path(tempfile.mkdtemp(prefix="portkey-mw-compare-"))
    (links / "portkey_mw").symlink_to(root / "portkey_mw")
    (links / "portkey_mw_plugins").symlink_to(root / "plugins")
    return {"PYTHONPATH": str(links)}, links
