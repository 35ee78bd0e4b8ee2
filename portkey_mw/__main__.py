"""``python -m portkey_mw`` runs the ``portkey-mw`` command."""

from portkey_mw.cli import main

main()
