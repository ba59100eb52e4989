"""Security headers on every answer (pages, API, errors), made with the `secure` library.

The pages load only their own scripts and styles from /static, talk only to this server, and must
never be framed (`frame-ancestors 'none'`: no clickjacking of "Set the MQL policy"). Swagger UI at
/docs and /redoc are FastAPI's pages: their assets are this app's own files (api/routes/docs.py)
but they start with an inline script, and ReDoc runs a worker from a blob, so they get a policy of
their own that allows exactly that, and are still never framed.

The pages' charts are plotly.js (served from /vendor, never a CDN). plotly.js puts its own rules
(hover labels, cursors) into an empty `<style>` element through the CSSOM, which CSP does not
govern; only creating that element needs allowing, and the page policy allows exactly the empty
one (the sha256 of ""), not inline styles in general. The bundle also carries maplibre (map
charts, unused here), which adds its stylesheet as one fixed inline text on load: its hash is
allowed too. Both hashes are of plotly.min.js as the pinned plotly package ships it; after an
upgrade the page tests (no console errors) say whether they still match.
"""

from __future__ import annotations

import secure
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _policy(csp: secure.ContentSecurityPolicy) -> list[tuple[bytes, bytes]]:
    headers = secure.Secure(
        csp=csp,
        xcto=secure.XContentTypeOptions().nosniff(),
        referrer=secure.ReferrerPolicy().no_referrer(),
        xfo=secure.XFrameOptions().deny(),
        coop=secure.CrossOriginOpenerPolicy().same_origin(),
        permissions=secure.PermissionsPolicy().geolocation().camera().microphone(),
    ).headers
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


#: CSP source for an inline `<style>` element with no text (sha256 of the empty string).
EMPTY_STYLE_ELEMENT = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
#: CSP source for the maplibre stylesheet plotly.min.js (plotly 7.1, plotly.js 4.1) adds on load.
PLOTLY_MAPLIBRE_STYLE = "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='"

PAGE_HEADERS = _policy(
    secure.ContentSecurityPolicy()
    .default_src("'self'")
    .script_src("'self'")
    .style_src("'self'", EMPTY_STYLE_ELEMENT, PLOTLY_MAPLIBRE_STYLE)
    .img_src("'self'", "data:")
    .connect_src("'self'")
    .object_src("'none'")
    .base_uri("'none'")
    .form_action("'self'")
    .frame_ancestors("'none'")
)
DOCS_HEADERS = _policy(
    secure.ContentSecurityPolicy()
    .default_src("'self'")
    .script_src("'self'", "'unsafe-inline'")
    .style_src("'self'", "'unsafe-inline'")
    .img_src("'self'", "data:")
    .worker_src("'self'", "blob:")
    .connect_src("'self'")
    .object_src("'none'")
    .base_uri("'none'")
    .frame_ancestors("'none'")
)


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers to every HTTP answer that does not set them."""

    def __init__(
        self, app: ASGIApp, docs_paths: frozenset[str] = frozenset({"/docs", "/redoc"})
    ) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = DOCS_HEADERS if scope.get("path") in self.docs_paths else PAGE_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
