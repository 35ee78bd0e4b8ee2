"""The public interfaces are documented: every hook, with a working example."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from portkey_mw.plugin import PluginManager

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS_DOC = DOCS / "plugin_hooks.md"


def hook_names() -> list[str]:
    return sorted(name for name in dir(PluginManager().pluggy.hook) if not name.startswith("_"))


def hook_sections() -> dict[str, str]:
    """``### `name` `` sections of plugin_hooks.md, by hook name."""
    text = HOOKS_DOC.read_text(encoding="utf-8")
    parts = re.split(r"^### `(\w+)`\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented_with_an_example(hook: str) -> None:
    section = hook_sections().get(hook)
    assert section is not None, f"docs/plugin_hooks.md has no '### `{hook}`' section"
    examples = python_blocks(section)
    assert any(re.search(rf"def {hook}\(", block) for block in examples), (
        f"the {hook} section needs a python example implementing the hook"
    )


def test_no_section_for_a_hook_that_does_not_exist() -> None:
    assert set(hook_sections()) <= set(hook_names())


@pytest.mark.parametrize("index", range(len(python_blocks(HOOKS_DOC.read_text()))))
def test_hook_examples_run(index: int) -> None:
    """Each example imports and defines what it shows (names it uses really exist)."""
    block = python_blocks(HOOKS_DOC.read_text())[index]
    exec(compile(block, f"plugin_hooks.md example {index}", "exec"), {})


def test_provider_table_matches_the_plugins() -> None:
    """docs/providers.md embeds the table the first-party plugins' declarations produce."""
    from portkey_mw import Gateway
    from portkey_mw.capabilities import END, START, markdown_table
    from portkey_mw.config.server import ServerSettings

    first_party = [
        ep.name
        for ep in importlib.metadata.entry_points(group="portkey_mw")
        if ep.dist is not None and ep.dist.name == "portkey-mw"
    ]
    settings = ServerSettings.from_mapping({"mock": True, "plugins": {"load": first_party}})
    table = markdown_table(Gateway(settings).providers.values())
    page = (DOCS / "providers.md").read_text(encoding="utf-8")
    embedded = page.split(START, 1)[1].split(END, 1)[0].lstrip("\n")
    assert embedded == table, "docs/providers.md is stale: run `portkey-mw providers --markdown`"


GUARDRAILS_DOC = DOCS / "guardrails.md"


def test_the_guardrail_example_in_the_docs_runs() -> None:
    import asyncio

    from portkey_mw import GuardrailInput

    block = python_blocks(GUARDRAILS_DOC.read_text(encoding="utf-8"))[0]
    namespace: dict[str, object] = {}
    exec(compile(block, str(GUARDRAILS_DOC), "exec"), namespace)
    check = namespace["BannedTopics"]()  # type: ignore[operator]
    params = {"topics": ["merger"], "mask": True}
    check.validate(params)
    subject = GuardrailInput(phase="before", texts=["the merger"], request={})
    verdict = asyncio.run(check.check(subject, params))
    assert verdict.passed and verdict.texts == ["the ******"]


def test_every_builtin_check_is_documented() -> None:
    from portkey_mw import Gateway, ServerSettings

    page = GUARDRAILS_DOC.read_text(encoding="utf-8")
    first_party = [
        ep.name
        for ep in importlib.metadata.entry_points(group="portkey_mw")
        if ep.dist is not None and ep.dist.name == "portkey-mw"
    ]
    settings = ServerSettings.from_mapping({"plugins": {"load": first_party}})
    for check_id in Gateway(settings).guardrails:
        assert f"`{check_id}`" in page, f"docs/guardrails.md does not document {check_id}"


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize("page", ["configuration.md", "security.md", "caching.md", "limits.md"])
def test_server_file_examples_validate(page: str) -> None:
    """Every YAML example of a page is a valid server file (or a valid part of one)."""
    import yaml

    from portkey_mw.config.server import ServerSettings

    blocks = yaml_blocks((DOCS / page).read_text(encoding="utf-8"))
    assert blocks
    for block in blocks:
        ServerSettings.from_mapping(yaml.safe_load(block) or {}, source=f"{page} example")


def test_security_doc_lists_every_refused_range() -> None:
    from portkey_mw.auth.outbound import BLOCKED_IPV4, BLOCKED_IPV6

    page = (DOCS / "security.md").read_text(encoding="utf-8")
    for network, _ in (*BLOCKED_IPV4, *BLOCKED_IPV6):
        shown = str(network).removesuffix("/128").replace("255.255.255.255/32", "")
        assert f"`{shown}`" in page or f"`{network}`" in page, network


CLI_DOC = DOCS / "cli.md"


def cli_commands() -> dict[str, object]:
    """Every leaf command of ``portkey-mw``, by its full name."""
    import click

    from portkey_mw.cli import main

    found: dict[str, object] = {}

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
        else:
            found[path] = command

    walk(main, "portkey-mw")
    return found


def cli_sections() -> dict[str, str]:
    """``### `portkey-mw ...` `` sections of cli.md, each with its part's introduction
    (the text between the ``##`` heading and its first ``###``), where shared options are
    described once."""
    text = CLI_DOC.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        intro, *rest = re.split(r"^### ", part, flags=re.MULTILINE)
        for section in rest:
            match = re.match(r"`(portkey-mw[^`]*)`\s*$", section.splitlines()[0])
            if match:
                sections[match.group(1)] = intro + section
    return sections


@pytest.mark.parametrize("name", sorted(cli_commands()))
def test_every_command_and_option_is_documented(name: str) -> None:
    import click

    section = cli_sections().get(name)
    assert section is not None, f"docs/cli.md has no '### `{name}`' section"
    command = cli_commands()[name]
    assert isinstance(command, click.Command)
    for param in command.params:
        if isinstance(param, click.Option):
            for flag in param.opts + param.secondary_opts:
                if flag.startswith("--") and flag != "--help":
                    assert flag in section, f"docs/cli.md does not mention {flag} of {name}"


def test_no_cli_section_for_a_command_that_does_not_exist() -> None:
    assert set(cli_sections()) <= set(cli_commands())
