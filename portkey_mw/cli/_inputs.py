"""Reading what the control-plane commands send: secrets, ``k=v`` pairs, config files."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import orjson
import yaml

#: Largest secret or config file read (a service account key is about 2.5 kB).
MAX_FILE_BYTES = 1024 * 1024


def read_secret(path: str | None, *, what: str, prompt: bool) -> str | None:
    """A secret from a file, from stdin (``-``), or typed at a hidden prompt -- never
    from the command line, where it would land in the shell's history.

    :param path: the file option's value; ``-`` reads stdin.
    :param what: how the prompt and errors name the secret.
    :param prompt: ask for it when no file is given and stdin is a terminal.
    :returns: the secret without surrounding whitespace, or ``None`` for none given.
    """
    if path == "-":
        value = sys.stdin.read(MAX_FILE_BYTES + 1)
        source = "stdin"
    elif path is not None:
        value = _read(Path(path), what)
        source = path
    elif prompt and sys.stdin.isatty():
        value = click.prompt(f"{what} (typing is hidden)", hide_input=True, default="")
        source = "the prompt"
    else:
        return None
    if len(value) > MAX_FILE_BYTES:
        raise click.BadParameter(f"the {what} from {source} is larger than 1 MiB")
    value = value.strip()
    if not value:
        raise click.BadParameter(f"the {what} from {source} is empty")
    return value


def _read(path: Path, what: str) -> str:
    try:
        with path.open(encoding="utf-8") as stream:
            return stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read the {what} from {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"the {what} file {path} is not UTF-8 text") from None


def key_values(pairs: Iterable[str], option: str) -> dict[str, str]:
    """``k=v`` option values as a mapping (a key given twice: the last value).

    :raises click.BadParameter: a value without ``=`` or with an empty key.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        out[key.strip()] = value
    return out


def read_config(path: Path) -> dict[str, Any]:
    """A routing config from a JSON or YAML file (by its suffix; JSON otherwise).

    :raises click.BadParameter: unreadable, malformed, or not an object.
    """
    text = _read(path, "config")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            with path.open(encoding="utf-8") as stream:  # marks name the file
                value = yaml.safe_load(stream)
        else:
            value = orjson.loads(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path} is not valid {_kind(path)}: {exc}") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"{path} must hold a config object, not {type(value).__name__}")
    return value


def _kind(path: Path) -> str:
    return "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"
