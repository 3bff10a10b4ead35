"""The reference dashboard page (local mode only): static HTML, CSS and JS under
``gateway/dashboard_page/`` that uses nothing but the gateway's dashboard routes.

It is registered by ``create_app`` only when ``AICOLLECT_ENV=local``, and it mints nothing:
the page reads a bearer JWT from its URL fragment (``/dashboard/#token=...``, never sent to
a server) or from a token pasted into it. ``aicollect run`` writes such a link for the
local tenant ``acme`` to ``.data/dashboard-link.txt``, signed with the local secret in
``.data/local.env``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

PAGE_DIR = Path(__file__).resolve().parent / "dashboard_page"
BASE = "/dashboard/"
FILES = {
    "": ("index.html", "text/html"),
    "app.js": ("app.js", "text/javascript"),
    "app.css": ("app.css", "text/css"),
}
# Everything from the gateway itself; nothing from elsewhere, never framed.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


async def _file(request: web.Request) -> web.Response:
    name, content_type = FILES[request.match_info.get("name", "")]
    return web.Response(
        body=(PAGE_DIR / name).read_bytes(),
        content_type=content_type,
        charset="utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": POLICY,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _to_page(request: web.Request) -> web.Response:
    raise web.HTTPFound(BASE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard", _to_page)
    app.router.add_get(BASE, _file)
    app.router.add_get(BASE + "{name:app\\.(?:js|css)}", _file)
