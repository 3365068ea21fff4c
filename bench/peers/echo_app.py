"""A bare FastAPI echo: the ceiling of HTTP + FastAPI on this machine, with no model at all.

    uvicorn bench.peers.echo_app:app

``POST /v1/predict`` reads the body and sends it back unchanged with its content type.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

app = FastAPI(title="echo", docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/v1/predict")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type=request.headers.get("content-type", "application/octet-stream"))


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
