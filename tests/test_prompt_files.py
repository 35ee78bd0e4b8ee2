"""Prompt files: YAML prompts and partials applied to the store at start-up and by
``portkey-mw prompts push``; and the ``portkey-mw prompts`` commands over the local store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from portkey_mw import Gateway
from portkey_mw.admin.prompt_files import PromptFileError, apply_order, parse_prompt_file
from portkey_mw.cli import main
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import GatewayError
from tests.conftest import in_process
from tests.planted import ADMIN_KEY

ADMIN = {"x-portkey-api-key": ADMIN_KEY}

TONE = """\
slug: pp-tone
kind: partial
name: Tone
template: "Answer in a {{tone}} way."
"""

SUPPORT = """\
slug: pp-support
name: Support answer
model: mock-model
provider: mock
parameters: {temperature: 0.2, max_tokens: 300}
variables: {tone: polite}
messages:
  - {role: system, content: "You help with {{product}}. {{>pp-tone}}"}
  - {role: user, content: "{{question}}"}
labels: {staging: latest}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A server file with a prompts/ directory beside it (the default place)."""
    monkeypatch.setenv("PORTKEY_MW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PORTKEY_MW_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.delenv("PORTKEY_MW_DATABASE_URL", raising=False)
    monkeypatch.delenv("PORTKEY_MW_REDIS_URL", raising=False)
    monkeypatch.delenv("PORTKEY_MW_URL", raising=False)
    (tmp_path / "server.yaml").write_text(
        json.dumps({"mock": True, "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"}})
    )
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "tone.yaml").write_text(TONE)
    (tmp_path / "prompts" / "support.yml").write_text(SUPPORT)
    yield tmp_path


async def start(site: Path) -> dict[str, Any]:
    """Start a gateway over the site; the two prompts as the admin API shows them."""
    async with in_process(Gateway(config_file=site / "server.yaml")) as client:
        found = {}
        for path in ("/v1/prompts/pp-support", "/v1/prompts/partials/pp-tone"):
            reply = await client.get(path, headers=ADMIN)
            assert reply.status_code == 200, reply.text
            found[reply.json()["slug"]] = reply.json()
        versions = await client.get("/v1/prompts/pp-support/versions", headers=ADMIN)
        found["versions"] = versions.json()["data"]
        return found


def deployed(record: dict[str, Any]) -> dict[str, list[int]]:
    return {
        label["label_id"]: [v["version"] for v in label["versions"]] for label in record["labels"]
    }


# -- start-up --------------------------------------------------------------------------------
async def test_files_are_created_at_start_up_with_their_own_slugs(site: Path) -> None:
    found = await start(site)
    support, tone = found["pp-support"], found["pp-tone"]
    assert support["name"] == "Support answer" and support["object"] == "prompt"
    assert tone["object"] == "partial"
    assert support["default_version"] == support["latest_version"] == 1
    assert support["model"] == "mock-model" and support["provider"] == "mock"
    assert support["parameters"] == {"temperature": 0.2, "max_tokens": 300}
    assert support["variables"] == {"tone": "polite"}
    assert json.loads(support["string"])[1] == {"role": "user", "content": "{{question}}"}
    assert deployed(support) == {"staging": [1]}


async def test_a_restart_is_idempotent_and_a_changed_file_is_published(site: Path) -> None:
    await start(site)
    again = await start(site)
    assert len(again["versions"]) == 1 and again["pp-support"]["default_version"] == 1
    (site / "prompts" / "support.yml").write_text(
        SUPPORT.replace("temperature: 0.2", "temperature: 0.5")
    )
    changed = await start(site)
    support = changed["pp-support"]
    assert support["default_version"] == support["latest_version"] == 2
    assert support["parameters"]["temperature"] == 0.5
    assert deployed(support) == {"staging": [2]}  # "latest" follows
    assert changed["pp-tone"]["latest_version"] == 1  # untouched


async def test_a_label_may_point_at_a_version_number(site: Path) -> None:
    await start(site)
    (site / "prompts" / "support.yml").write_text(
        SUPPORT.replace("Support answer", "Support")
        .replace("{{question}}", "Q: {{question}}")
        .replace("{staging: latest}", "{staging: latest, production: 1}")
    )
    found = await start(site)
    assert found["pp-support"]["name"] == "Support"
    assert deployed(found["pp-support"]) == {"staging": [2], "production": [1]}


def bad(site: Path, name: str, text: str) -> None:
    (site / "prompts" / name).write_text(text)


BAD_FILES = {
    "not YAML": ("broken.yaml", "slug: pp-x\nmessages: [\n", "not valid YAML"),
    "a template error": (
        "broken.yaml",
        "slug: pp-broken\ntemplate: 'Hello {{#items}} there'\n",
        "line 1",
    ),
    "a missing partial": (
        "broken.yaml",
        "slug: pp-broken\ntemplate: 'Hello {{>pp-nowhere}}'\n",
        "pp-nowhere",
    ),
    "a bad slug": ("broken.yaml", "slug: Support_Answer\ntemplate: hi\n", "slug"),
    "no template": ("broken.yaml", "slug: pp-broken\n", "exactly one of"),
    "an unknown field": ("broken.yaml", "slug: pp-broken\ntemplate: x\nmodle: y\n", "modle"),
    "an unknown provider": (
        "broken.yaml",
        "slug: pp-broken\ntemplate: x\nprovider: nowhere\n",
        "unknown provider",
    ),
    "an unknown label": (
        "broken.yaml",
        "slug: pp-broken\ntemplate: x\nlabels: {canary: latest}\n",
        "no label 'canary'",
    ),
    "a label past the versions": (
        "broken.yaml",
        "slug: pp-broken\ntemplate: x\nlabels: {staging: 4}\n",
        "version 4",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
async def test_a_bad_file_stops_the_start_naming_it(site: Path, case: str) -> None:
    name, text, problem = BAD_FILES[case]
    bad(site, name, text)
    gateway = Gateway(config_file=site / "server.yaml")
    with pytest.raises(PromptFileError) as caught:
        await gateway.startup()
    assert name in caught.value.message and problem in caught.value.message, caught.value.message


async def test_files_that_include_each_other_are_refused_before_any_is_written(
    site: Path,
) -> None:
    bad(site, "a.yaml", "slug: pp-a\nkind: partial\ntemplate: 'a {{>pp-b}}'\n")
    bad(site, "b.yaml", "slug: pp-b\nkind: partial\ntemplate: 'b {{>pp-a}}'\n")
    gateway = Gateway(config_file=site / "server.yaml")
    with pytest.raises(PromptFileError, match=r"include each other: .*a\.yaml.*b\.yaml"):
        await gateway.startup()
    # nothing was written: with the cycle gone, the good files start as version 1
    (site / "prompts" / "a.yaml").unlink()
    (site / "prompts" / "b.yaml").unlink()
    assert (await start(site))["pp-support"]["latest_version"] == 1


async def test_two_files_with_one_slug_are_named(site: Path) -> None:
    bad(site, "tone2.yaml", TONE)
    with pytest.raises(PromptFileError, match=r"tone\.yaml and .*tone2\.yaml both have"):
        await Gateway(config_file=site / "server.yaml").startup()


async def test_skip_leaves_a_bad_file_out(site: Path) -> None:
    bad(site, "broken.yaml", "slug: pp-broken\ntemplate: 'Hello {{>pp-nowhere}}'\n")
    settings = json.loads((site / "server.yaml").read_text())
    (site / "server.yaml").write_text(json.dumps({**settings, "prompts": {"bad_files": "skip"}}))
    assert (await start(site))["pp-support"]["default_version"] == 1


async def test_files_need_the_store(site: Path) -> None:
    (site / "server.yaml").write_text(json.dumps({"mock": True, "store": {"enabled": False}}))
    with pytest.raises(GatewayError, match="store is disabled"):
        await Gateway(config_file=site / "server.yaml").startup()


def test_the_directory_is_relative_to_the_server_file(tmp_path: Path) -> None:
    server = tmp_path / "server.yaml"
    server.write_text("prompts: {directory: library}\n")
    assert ServerSettings.from_file(server).prompts.directory == tmp_path / "library"
    server.write_text("{}\n")
    assert ServerSettings.from_file(server).prompts.directory is None  # no prompts/ here
    (tmp_path / "prompts").mkdir()
    assert ServerSettings.from_file(server).prompts.directory == tmp_path / "prompts"
    assert ServerSettings().prompts.directory is None


def test_partials_come_first() -> None:
    files = [
        parse_prompt_file({"slug": "pp-p", "template": "{{>pp-b}} {{>pp-a}}"}, "p.yaml"),
        parse_prompt_file({"slug": "pp-b", "kind": "partial", "template": "{{>pp-a}}"}, "b.yaml"),
        parse_prompt_file({"slug": "pp-a", "kind": "partial", "template": "a"}, "a.yaml"),
    ]
    assert [f.prompt.slug for f in apply_order(files)] == ["pp-a", "pp-b", "pp-p"]


def test_a_date_in_a_file_stays_the_same_text() -> None:
    import datetime

    spec = parse_prompt_file(
        {"slug": "pp-d", "template": "x", "template_metadata": {"on": datetime.date(2024, 1, 2)}},
        "d.yaml",
    ).prompt
    assert spec.definition() == {"template_metadata": {"on": "2024-01-02"}}


# -- the CLI, over the local store -----------------------------------------------------------
@pytest.fixture
def cli(site: Path) -> Any:
    runner = CliRunner(env={"COLUMNS": "100", "PORTKEY_MW_URL": None})

    def invoke(*args: str, code: int = 0) -> Result:
        result = runner.invoke(main, [*args, "--server-file", str(site / "server.yaml")])
        assert result.exit_code == code, result.output
        assert ADMIN_KEY not in result.output
        return result

    return invoke


def test_push_reports_each_file(cli: Any, site: Path) -> None:
    prompts = site / "prompts"
    first = cli("prompts", "push", str(prompts / "tone.yaml"), str(prompts / "support.yml"))
    lines = first.stdout.splitlines()
    assert lines[0].endswith("tone.yaml: pp-tone created, version 1 published"), lines
    assert "support.yml: pp-support created, version 1 published; labels moved: staging" in lines[1]
    assert "pp-support unchanged (version 1)" in cli("prompts", "push", str(prompts)).stdout
    (prompts / "support.yml").write_text(SUPPORT.replace("{{question}}", "Q: {{question}}"))
    again = cli("prompts", "push", str(prompts), "--json")
    outcomes = {a["slug"]: a["outcome"] for a in orjson.loads(again.stdout)["data"]}
    assert outcomes == {"pp-tone": "unchanged", "pp-support": "new version"}


def test_push_names_a_bad_file(cli: Any, site: Path) -> None:
    bad(site, "broken.yaml", "slug: pp-broken\ntemplate: 'Hello {{>pp-nowhere}}'\n")
    failed = cli("prompts", "push", str(site / "prompts" / "broken.yaml"), code=1)
    assert "broken.yaml" in failed.output and "pp-nowhere" in failed.output


def test_list_show_diff_and_render(cli: Any, site: Path) -> None:
    prompts = site / "prompts"
    cli("prompts", "push", str(prompts))
    (prompts / "support.yml").write_text(
        SUPPORT.replace("{{question}}", "Q: {{question}}").replace("0.2", "0.7")
    )
    cli("prompts", "push", str(prompts))
    listed = cli("prompts", "list").stdout
    row = next(line for line in listed.splitlines() if "pp-support" in line)
    assert "prompt" in row and " 2 " in row and "staging=2" in row
    assert "partial" in next(line for line in listed.splitlines() if "pp-tone" in line)

    shown = cli("prompts", "show", "pp-support@1").stdout
    assert '"content": "{{question}}"' in shown and '"temperature": 0.2' in shown
    as_json = orjson.loads(cli("prompts", "show", "pp-support@staging", "--json").stdout)
    assert as_json["version"] == 2
    assert "Answer in a {{tone}} way." in cli("prompts", "show", "pp-tone").stdout
    cli("prompts", "show", "pp-support@9", code=1)
    cli("prompts", "show", "pp-nothing", code=1)

    diff = cli("prompts", "diff", "pp-support", "1", "latest").stdout
    assert "--- pp-support@1" in diff and "+++ pp-support@2" in diff
    assert '-    "content": "{{question}}"' in diff
    assert '+    "content": "Q: {{question}}"' in diff
    assert '-    "temperature": 0.2' in diff and '+    "temperature": 0.7' in diff

    variables = site / "vars.json"
    variables.write_text('{"product": "Widgets", "question": "from the file"}')
    rendered = orjson.loads(
        cli(
            "prompts", "render", "pp-support@1", "--vars-file", str(variables),
            "--var", "question=Why?",
        ).stdout
    )  # fmt: skip
    messages = rendered["rendered"]["messages"]
    assert messages[0]["content"] == "You help with Widgets. Answer in a polite way."
    assert messages[1] == {"role": "user", "content": "Why?"}
    assert rendered["prompt"] == {"id": "pp-support", "version": 1, "label": None}
    assert rendered["rendered"]["model"] == "mock-model"
    missing = cli("prompts", "render", "pp-nothing", code=1)
    assert "pp-nothing" in missing.output


# -- the route push sends ----------------------------------------------------------------------
async def test_the_files_route_refuses_hostile_bodies(site: Path) -> None:
    (site / "prompts" / "tone.yaml").unlink()
    (site / "prompts" / "support.yml").unlink()
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    bodies = [
        {"files": "nope"},
        {"files": []},
        {"files": [{"source": "x.yaml", "prompt": {"slug": "../../etc", "template": "x"}}]},
        {"files": [{"source": "x.yaml", "prompt": {"slug": "pp-x", "template": "{{#a}}"}}]},
        {"files": [{"source": "x.yaml", "prompt": {"slug": "pp-x", "template": "x" * 300_000}}]},
        {
            "files": [
                {"source": "x.yaml", "prompt": {"slug": "pp-x", "template": "x", "tools": deep}}
            ]
        },
        {"files": [{"source": "x.yaml", "prompt": {"slug": "pp-x", "labels": {"staging": -1}}}]},
    ]
    async with in_process(Gateway(config_file=site / "server.yaml")) as client:
        for body in bodies:
            reply = await client.post("/v1/prompts/files", json=body, headers=ADMIN)
            assert 400 <= reply.status_code < 500, (reply.status_code, reply.text[:300])
        unauthenticated = await client.post("/v1/prompts/files", json=bodies[2])
        assert unauthenticated.status_code == 401
        listed = await client.get("/v1/prompts", headers=ADMIN)
        assert listed.json()["data"] == []
