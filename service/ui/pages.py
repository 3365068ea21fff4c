"""The built-in pages: the network diagram, the draw-a-digit page, the live dashboard and its data."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from service.http.dependencies import VERSION_ERRORS, InferenceDep
from service.http.responses import JSONBytesResponse
from service.ui.dependencies import MetricsHistoryDep
from service.ui.diagram import card_svg

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The security headers (Content-Security-Policy and others) are on every response: service.http.security_headers.
PAGE_HEADERS = {"Cache-Control": "no-cache"}
SUMMARY_PATH = "/v1/metrics/summary"
# The dashboard's polls run no model: they need a key like any API call, but are charged to no quota.
UNMETERED_PATHS = frozenset({SUMMARY_PATH})


router = APIRouter()
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/", include_in_schema=False)
async def index_page() -> FileResponse:
    return _page("index.html")


@router.get("/dashboard", include_in_schema=False)
async def dashboard_page() -> FileResponse:
    return _page("dashboard.html")


@router.get(
    "/v1/models/digits/diagram.svg",
    tags=["model"],
    summary="SVG diagram of the served network, drawn from the model card's layer table",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **VERSION_ERRORS},
)
async def diagram(inference: InferenceDep) -> Response:
    return Response(card_svg(inference.card), media_type="image/svg+xml")


@router.get(
    SUMMARY_PATH,
    tags=["operations"],
    summary="Recent request rate, latency quantiles, batch size and queue depth, read from /metrics' registry",
)
async def metrics_summary(history: MetricsHistoryDep) -> JSONBytesResponse:
    return JSONBytesResponse(history.summary())
