"""The dashboards app (frontends/web, built by Vite into frontends/web/dist) on the query
HTTP port, at `/`.

Registered after every API route, so the API keeps precedence: only GETs that no API route
takes reach it. A path naming a file of the build serves that file (hashed assets cache for a
year); any other path gets index.html (the app routes in the browser); paths under /api/ and
the probes stay JSON 404s. Static files need no key: the data behind them does.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from core.errors import NotFound

ENV_DIR = "ARGUS_WEB_DIR"
_REPO_DIST = Path(__file__).resolve().parents[1] / "frontends" / "web" / "dist"
_API_PREFIXES = ("/api/", "/healthz", "/readyz")
_MAX_PATH = 1024

_NOT_BUILT = b"""<!doctype html><meta charset="utf-8"><title>Argus</title>
<body style="font-family:sans-serif;margin:3em">
<h1>Argus</h1><p>The web app is not built. Run <code>make run</code> (or
<code>cd frontends/web && npm ci && npm run build</code>) and reload.</p>
<p>The JSON API is at <a href="/api/v1/metrics">/api/v1/metrics</a>.</p></body>
"""


def web_dist_dir() -> Path:
    """Where the built app is: $ARGUS_WEB_DIR, else the repository's frontends/web/dist."""
    configured = os.environ.get(ENV_DIR, "")
    return Path(configured) if configured else _REPO_DIST


def add_web_app_routes(app: web.Application, dist: Path | None = None) -> None:
    """Serve the app from `dist`; call after every other route is added."""
    root = (dist or web_dist_dir()).resolve()

    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith(_API_PREFIXES) or len(path) > _MAX_PATH:
            raise NotFound(f"no such endpoint: {path[:200]}")
        index = root / "index.html"
        if not index.is_file():
            return web.Response(body=_NOT_BUILT, content_type="text/html", status=200)
        relative = path.lstrip("/")
        if relative and "\x00" not in relative:
            candidate = (root / relative).resolve()
            # Inside the build only (no ../ or symlink escapes), and a regular file.
            if candidate.is_relative_to(root) and candidate.is_file():
                immutable = candidate.parent.name == "assets"
                cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
                return web.FileResponse(candidate, headers={"Cache-Control": cache})
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/{tail:.*}", serve)
