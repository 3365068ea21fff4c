"""A model behind FastAPI the tutorial way: one model call per request, on the event loop.

    DIGITS_ARTIFACT=model/artifacts/digits.pt uvicorn loadtest.peers.naive_app:app

No batching, no worker thread, no queue. Inputs are decoded and preprocessed with the
gateway's own functions, so what the benchmark compares is the serving design alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson
import torch
from fastapi import FastAPI, Request, Response
from starlette.datastructures import UploadFile

from model.card import load_card
from model.settings import DEFAULT_ARTIFACT
from service.decoding import decode_base64, decode_image
from service.preprocessing import Normalization, to_mnist_field
from service.schemas import PredictRequest

MAX_PIXELS = 16_000_000

ARTIFACT = Path(os.environ.get("DIGITS_ARTIFACT", str(DEFAULT_ARTIFACT)))
torch.set_num_threads(int(os.environ.get("DIGITS_TORCH_THREADS", "1")))
MODULE = torch.jit.load(str(ARTIFACT), map_location="cpu").eval()
CARD = load_card(ARTIFACT)
NORMALIZATION = Normalization(CARD.input.mean, CARD.input.std)

app = FastAPI(title="naive", docs_url=None, redoc_url=None, openapi_url=None)


async def _fields(request: Request) -> list[np.ndarray]:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form["file"]
        assert isinstance(upload, UploadFile)
        gray = decode_image(await upload.read(), max_pixels=MAX_PIXELS, index=0)
        return [to_mnist_field(gray, "auto" if request.query_params.get("preprocess") != "none" else "none", 0)]
    parsed = PredictRequest.model_validate_json(await request.body())
    fields = []
    for index, instance in enumerate(parsed.instances):
        if instance.image is not None:
            gray = decode_image(decode_base64(instance.image, index), max_pixels=MAX_PIXELS, index=index)
        else:
            gray = np.asarray(instance.pixels, dtype=np.float32)
        fields.append(to_mnist_field(gray, parsed.preprocess, index))
    return fields


@app.post("/v1/predict")
async def predict(request: Request) -> Response:
    batch = np.stack([NORMALIZATION.apply(field) for field in await _fields(request)])[:, None]
    with torch.inference_mode():
        probabilities = torch.softmax(MODULE(torch.from_numpy(batch)), dim=1).numpy()
    predictions = [
        {"label": int(row.argmax()), "confidence": float(row.max()), "probabilities": row.tolist()}
        for row in probabilities
    ]
    return Response(orjson.dumps({"predictions": predictions}), media_type="application/json")


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
