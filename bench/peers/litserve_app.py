"""The digits model behind LitServe, with LitServe's own dynamic batching; run in the peers' virtualenv.

    PYTHONPATH=. DIGITS_ARTIFACT=model/artifacts/digits.pt \\
        ~/.cache/digits/peers-venv/bin/python -m bench.peers.litserve_app --port 8000 --workers 2

LitServe's API server processes (uvicorn + FastAPI) parse each request and put it on a queue; inference worker
processes (``workers_per_device``) take up to ``max_batch_size`` requests, waiting at most ``batch_timeout``,
decode and normalize each with the gateway's pipeline, run them as one batch and answer each. A JSON body is a
/v1 predict request; a multipart upload's ``file`` is preprocessed ``auto`` (LitServe hands the worker the form,
not the query string). The answer carries label, confidence and probabilities per image.
"""

import argparse
from typing import Any, cast

import litserve as ls
import numpy as np
from fastapi import HTTPException
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from bench.peers.digits_model import DigitsModel, prediction_items
from service.core.errors import ApiError

PREDICT_PATH = "/v1/predict"


class DigitsAPI(ls.LitAPI):  # type: ignore[misc]  # litserve lives in the peers' virtualenv only, untyped here
    def setup(self, device: str) -> None:
        self.model = DigitsModel.load()

    # LitServe reads this annotation (no postponed annotations here): for ``Request`` it parses the body itself
    # and passes what request.json() or request.form() gave.
    def decode_request(self, request: Request) -> np.ndarray:
        body = cast("dict[str, Any] | FormData", request)
        try:
            if isinstance(body, FormData):
                upload = body["file"]
                data = upload.file.read() if isinstance(upload, UploadFile) else upload.encode()
                return self.model.prepare_file(data, "auto")
            return self.model.prepare_json(body)
        except ApiError as exc:
            raise HTTPException(exc.status, exc.message) from exc

    def batch(self, inputs: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
        return np.concatenate(inputs), [len(batch) for batch in inputs]

    def predict(self, x: tuple[np.ndarray, list[int]]) -> tuple[np.ndarray, list[int]]:
        batch, sizes = x
        return self.model.classify(batch), sizes

    def unbatch(self, output: tuple[np.ndarray, list[int]]) -> list[np.ndarray]:
        probabilities, sizes = output
        return np.split(probabilities, np.cumsum(sizes)[:-1])

    def encode_response(self, output: np.ndarray) -> dict[str, Any]:
        return {"predictions": prediction_items(output)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="inference worker processes (workers_per_device)")
    parser.add_argument("--api-servers", type=int, help="HTTP server processes (default: as many as --workers)")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout-ms", type=float, default=1.0)
    parser.add_argument("--fast-queue", action="store_true", help="ZeroMQ instead of multiprocessing queues")
    args = parser.parse_args()
    api = DigitsAPI(
        max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout_ms / 1000, api_path=PREDICT_PATH
    )
    server = ls.LitServer(
        api, accelerator="cpu", workers_per_device=args.workers, fast_queue=args.fast_queue, disable_openapi_url=True
    )
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=args.api_servers,
        log_level="warning",
        generate_client_file=False,
    )


if __name__ == "__main__":
    main()
