"""The ``portkey-mw`` command.

One module per command group; this one only assembles them:

- ``serve`` (:mod:`.serve`), ``demo`` (:mod:`.demo`)
- ``plugins``, ``providers``, ``guardrails`` (:mod:`.registry`): what the plugins give
- ``config`` (:mod:`.config`): server files and routing configs
- ``cache``, ``admin`` (:mod:`.cache`): a running gateway's cache, the admin key
- ``virtual-keys`` (:mod:`.virtual_keys`), ``keys`` (:mod:`.keys`), ``configs``
  (:mod:`.configs`): the control plane, through its admin API (:mod:`._client`)
- ``prompts`` (:mod:`.prompts`): the prompt library, and prompt files pushed from git
- ``budgets`` (:mod:`.budgets`): every budget and rate limit, and resets
- ``logs`` (:mod:`.logs`): request logs -- tail, search, stats
- ``db``, ``vault`` (:mod:`.store`): the store's schema and its master key
"""

from __future__ import annotations

import click

from portkey_mw.cli.budgets import budgets
from portkey_mw.cli.cache import admin, cache
from portkey_mw.cli.config import config
from portkey_mw.cli.configs import configs
from portkey_mw.cli.demo import demo
from portkey_mw.cli.keys import keys
from portkey_mw.cli.logs import logs
from portkey_mw.cli.prompts import prompts
from portkey_mw.cli.registry import guardrails_command, plugins_command, providers_command
from portkey_mw.cli.serve import serve
from portkey_mw.cli.store import db, vault
from portkey_mw.cli.virtual_keys import virtual_keys

__all__ = ["main"]


@click.group()
@click.version_option(package_name="portkey-mw")
def main() -> None:
    """portkey-mw: a self-hosted AI gateway (OpenAI- and Portkey-compatible)."""


for command in (
    serve,
    demo,
    plugins_command,
    providers_command,
    guardrails_command,
    config,
    cache,
    admin,
    virtual_keys,
    keys,
    configs,
    prompts,
    budgets,
    logs,
    db,
    vault,
):
    main.add_command(command)
