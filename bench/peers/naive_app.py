"""A model behind FastAPI the tutorial way: one model call per request, on the event loop.

    DIGITS_ARTIFACT=model/artifacts/digits.pt uvicorn bench.peers.naive_app:app

No batching, no worker thread, no queue. Inputs go through the gateway's own pipeline
(decode, MNIST field, normalize), so what the benchmark compares is the serving design alone.
"""

from __future__ import annotations

import numpy as np
import orjson
import torch
from fastapi import FastAPI, Request, Response
from starlette.datastructures import UploadFile

from bench.peers.digits_model import load_pipeline, prediction_items
from service.core.preprocessing import Mode
from service.core.schemas import PredictRequest
from service.core.settings import Settings

SETTINGS = Settings()
torch.set_num_threads(SETTINGS.model.torch_threads)
MODULE = torch.jit.load(str(SETTINGS.model.artifact), map_location="cpu").eval()
PIPELINE = load_pipeline()

app = FastAPI(title="naive", docs_url=None, redoc_url=None, openapi_url=None)


async def _batch(request: Request) -> np.ndarray:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form["file"]
        assert isinstance(upload, UploadFile)
        preprocess: Mode = "none" if request.query_params.get("preprocess") == "none" else "auto"
        return PIPELINE.prepare([await upload.read()], preprocess)
    parsed = PredictRequest.model_validate_json(await request.body())
    return PIPELINE.prepare([instance.raw for instance in parsed.instances], parsed.preprocess)


@app.post("/v1/predict")
async def predict(request: Request) -> Response:
    batch = await _batch(request)
    with torch.inference_mode():
        probabilities = torch.softmax(MODULE(torch.from_numpy(batch)), dim=1).numpy()
    return Response(orjson.dumps({"predictions": prediction_items(probabilities)}), media_type="application/json")


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
