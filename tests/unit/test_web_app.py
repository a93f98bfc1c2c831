"""The dashboards app on the query HTTP port: files of the build, SPA fallback, no escapes
out of the build directory, API routes first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from query_side.web_app import add_web_app_routes


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>app</title>")
    (root / "assets" / "index-abc.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("do not serve")
    return root


async def _client(dist: Path) -> TestClient[web.Request, web.Application]:
    from query_side.http_gateway import _errors_middleware

    app = web.Application(middlewares=[_errors_middleware])

    async def api(_: web.Request) -> web.Response:
        return web.json_response({"api": True})

    app.router.add_get("/api/v1/metrics", api)
    add_web_app_routes(app, dist)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(dist: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    c = await _client(dist)
    yield c
    await c.close()


async def test_index_and_spa_fallback(client: TestClient[web.Request, web.Application]) -> None:
    for path in ("/", "/d/host", "/some/deep/route"):
        resp = await client.get(path)
        assert resp.status == 200
        assert "<title>app</title>" in await resp.text()
        assert resp.headers["Cache-Control"] == "no-cache"


async def test_hashed_asset_is_served_and_cached(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/assets/index-abc.js")
    assert resp.status == 200
    assert await resp.text() == "console.log(1)"
    assert "immutable" in resp.headers["Cache-Control"]
    assert "javascript" in resp.headers["Content-Type"]


async def test_api_routes_keep_precedence_and_unknown_api_is_json_404(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert await (await client.get("/api/v1/metrics")).json() == {"api": True}
    resp = await client.get("/api/v1/nope")
    assert resp.status == 404
    assert "error" in await resp.json()


async def test_no_escape_from_the_build(client: TestClient[web.Request, web.Application]) -> None:
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        resp = await client.get(path)
        assert "do not serve" not in await resp.text(), path


async def test_unbuilt_app_explains_how_to_build(tmp_path: Path) -> None:
    c = await _client(tmp_path / "missing")
    try:
        resp = await c.get("/")
        assert resp.status == 200
        assert "make run" in await resp.text()
    finally:
        await c.close()
