"""The dashboard's routes over plain HTTP: the page and its assets, their headers (a strict
Content-Security-Policy, nosniff, no caching of the page), and that nothing but the
package's own files can be reached below /dashboard/static."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from portkey_mw import Gateway
from portkey_mw.config.server import ServerSettings
from portkey_mw.dashboard.serve import CONTENT_SECURITY_POLICY
from tests.conftest import in_process

STATIC = Path(__file__).parent.parent / "portkey_mw" / "dashboard" / "static"


def gateway() -> Gateway:
    return Gateway(ServerSettings.model_validate({"store": {"enabled": False}}))


async def test_the_page_is_served_with_a_strict_policy_and_no_caching() -> None:
    async with in_process(gateway()) as client:
        answer = await client.get("/dashboard")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-frame-options"] == "DENY"
    # no data and no inline script in the page itself
    html = answer.text
    assert "<script" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
    assert "style=" not in html and "<style" not in html
    assert "http://" not in html and "https://" not in html, "an external resource"


async def test_every_asset_is_served_with_its_content_type() -> None:
    expected = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    assets = [p for p in STATIC.rglob("*") if p.suffix in expected]
    assert len(assets) >= 8
    async with in_process(gateway()) as client:
        for asset in assets:
            path = asset.relative_to(STATIC).as_posix()
            answer = await client.get(f"/dashboard/static/{path}")
            assert answer.status_code == 200, path
            assert answer.headers["content-type"] == expected[asset.suffix], path
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["cache-control"] == "no-cache"
            assert answer.content == asset.read_bytes()
            head = await client.head(f"/dashboard/static/{path}")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(asset.read_bytes()))


def test_the_scripts_load_nothing_from_elsewhere_and_never_parse_html() -> None:
    for script in STATIC.rglob("*.js"):
        text = script.read_text(encoding="utf-8")
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert unsafe not in text, f"{script.name} uses {unsafe}"
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
        for imported in re.findall(r'from "([^"]+)"', text):
            assert imported.startswith("./"), f"{script.name} imports {imported}"


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/static/../serve.py",
        "/dashboard/static/%2e%2e/serve.py",
        "/dashboard/static/..%2fserve.py",
        "/dashboard/static/js/../../serve.py",
        "/dashboard/static/../../app.py",
        "/dashboard/static//etc/passwd",
        "/dashboard/static/",
        "/dashboard/static/index.html",
        "/dashboard/static/js",
        "/dashboard/serve.py",
        "/dashboard/__init__.py",
        "/dashboardx",
    ],
)
async def test_nothing_outside_the_static_files_is_reachable(path: str) -> None:
    async with in_process(gateway()) as client:
        answer = await client.get(path)
    assert answer.status_code == 404, path
    assert answer.json()["error"]["code"] == "not_found"
    assert "import" not in answer.text


async def test_a_trailing_slash_redirects_and_other_methods_are_refused() -> None:
    async with in_process(gateway()) as client:
        slash = await client.get("/dashboard/")
        post = await client.post("/dashboard", content=b"{}")
        delete = await client.delete("/dashboard/static/js/main.js")
    assert slash.status_code == 308 and slash.headers["location"] == "../dashboard"
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    assert post.json()["error"]["code"] == "method_not_allowed"
    assert delete.status_code == 405


async def test_the_page_is_served_below_a_mount_point() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    gw = gateway()
    app = Starlette(routes=[Mount("/llm", app=gw)])
    transport = httpx.ASGITransport(app=app)
    async with gw.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://h") as client:
        page = await client.get("/llm/dashboard")
        script = await client.get("/llm/dashboard/static/js/main.js")
    assert page.status_code == 200 and 'src="dashboard/static/js/main.js"' in page.text
    assert script.status_code == 200
