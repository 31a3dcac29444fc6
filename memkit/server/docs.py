"""``/docs`` without the internet: Swagger UI's assets from the ``swagger-ui-bundle`` package.

FastAPI's default ``/docs`` page loads Swagger UI's JavaScript and CSS from a CDN, so it is
blank on an offline machine. :func:`serve_docs_offline` replaces it with the same page whose
assets are served by this server from the installed package (part of the ``[server]`` extra).
"""

from __future__ import annotations

from typing import Any

ASSETS = "/docs-assets"


def serve_docs_offline(app: Any) -> bool:
    """Serve ``app``'s Swagger UI page from local assets. Returns False (leaving FastAPI's
    CDN page) when swagger-ui-bundle is not installed or the app has no docs page."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return False
    if not app.docs_url or not app.openapi_url:
        return False
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    docs_url, openapi_url, title = app.docs_url, app.openapi_url, f"{app.title} - API docs"
    app.router.routes[:] = [r for r in app.router.routes
                            if getattr(r, "path", None) != docs_url]
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")

    return True
