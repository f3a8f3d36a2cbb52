"""The API pages work offline: /docs and /redoc load their assets from the scorer, not a CDN."""

from __future__ import annotations

import re

import httpx
import pytest

from serving.routers.docs import ASSETS_DIR


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_page_loads_every_asset_from_the_scorer(http: httpx.Client, page: str) -> None:
    html = http.get(page)
    assert html.status_code == 200
    assert "cdn." not in html.text and "fonts.googleapis" not in html.text
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html.text)
    assert assets, html.text[:500]
    for asset in assets:
        assert asset.startswith("/static/docs/"), asset
        served = http.get(asset)
        assert served.status_code == 200, asset
        assert served.content == (ASSETS_DIR / asset.rsplit("/", 1)[1]).read_bytes()


def test_swagger_page_reads_the_scorers_openapi(http: httpx.Client) -> None:
    html = http.get("/docs").text
    assert "url: '/openapi.json'" in html
    spec = http.get("/openapi.json").json()
    assert "/score" in spec["paths"]
    assert "/docs" not in spec["paths"]  # the pages are not part of the API


def test_swagger_oauth2_redirect_page_is_served(http: httpx.Client) -> None:
    page = http.get("/docs/oauth2-redirect")
    assert page.status_code == 200 and "oauth2" in page.text.lower()
