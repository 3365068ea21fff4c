"""The RPCs of ``inference.GRPCInferenceService``: each checks the caller's key, translates its message for the
inference object or the served model's metadata, and is counted like an HTTP route (route ``grpc:<Method>``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from service.core.api_keys import ApiKeys, bearer_key
from service.core.errors import ApiError, ErrorCode
from service.core.inference import Inference
from service.core.metrics import Metrics
from service.core.oip.inference import TensorCall, check_inference, output_tensors
from service.core.oip.metadata import ServedModel, server_metadata
from service.core.types import Limits
from service.grpc.generated import predict_v2_pb2 as pb
from service.grpc.messages import infer_response, inference_request, model_metadata
from service.grpc.status import details, grpc_status, trailing_metadata

log = logging.getLogger(__name__)

# The spec's name, the one on the wire (the .proto's package differs: see there).
SERVICE = "inference.GRPCInferenceService"
ROUTE_PREFIX = "grpc:"
# gRPC calls are HTTP/2 POSTs; the status label is the HTTP status of the answer's error code (200 when none), so
# the dashboards' and alerts' error rates read gRPC as they read HTTP.
METHOD_LABEL = "POST"
OK = 200


class InferenceService:
    """The service's handlers for a gRPC server (:meth:`handler`), over one served model."""

    def __init__(self, inference: Inference, model: ServedModel, metrics: Metrics, keys: ApiKeys | None) -> None:
        self.inference = inference
        self.model = model
        self.metrics = metrics
        self.keys = keys

    def handler(self) -> grpc.GenericRpcHandler:
        rpcs: dict[str, tuple[Callable[[Any], Awaitable[Message]], type[Message]]] = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": (self.model_infer, pb.ModelInferRequest),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    self._served(name, rpc),
                    request_deserializer=request_type.FromString,
                    response_serializer=_serialize,
                )
                for name, (rpc, request_type) in rpcs.items()
            },
        )

    async def server_live(self, _: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, _: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self.inference.ready())

    async def model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        self.model.check(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=await self.inference.ready())

    async def server_metadata(self, _: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**server_metadata())

    async def model_metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        self.model.check(request.name, request.version or None)
        return model_metadata(self.model.metadata())

    async def model_infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        model = self.model
        model.check(request.model_name, request.model_version or None)

        async def read(limits: Limits) -> TensorCall:
            return check_inference(*inference_request(request), model, limits)

        outcome = await self.inference.run(read)
        return infer_response(outcome.call, output_tensors(outcome.call, outcome.output, model), model.version)

    def _served(
        self, name: str, rpc: Callable[[Any], Awaitable[Message]]
    ) -> Callable[[Message, grpc.aio.ServicerContext], Awaitable[Message]]:
        route = ROUTE_PREFIX + name

        async def serve(request: Message, context: grpc.aio.ServicerContext) -> Message:
            started = time.perf_counter()
            status = OK
            self.metrics.inflight.inc()
            try:
                self._authorize(context)
                return await rpc(request)
            except Exception as exc:
                error = exc if isinstance(exc, ApiError) else _internal(exc)
                status = error.status
                self.metrics.errors.labels(code=error.code.value).inc()
                await context.abort(grpc_status(error), details(error), trailing_metadata(error))
                raise  # abort() raises; this line is never reached
            finally:
                self.metrics.inflight.dec()
                self.metrics.observe_request(route, METHOD_LABEL, status, time.perf_counter() - started)

        return serve

    def _authorize(self, context: grpc.aio.ServicerContext) -> None:
        if self.keys is None:
            return
        credentials = dict(context.invocation_metadata() or ()).get("authorization", "")
        key = bearer_key(credentials)
        if key is None or self.keys.identify(key) is None:
            raise ApiError(ErrorCode.unauthorized, "this API needs a key: send metadata 'authorization: Bearer <key>'")


def _internal(exc: Exception) -> ApiError:
    log.error("gRPC call failed", exc_info=exc)
    return ApiError(ErrorCode.internal_error, "internal error")


def _serialize(message: Message) -> bytes:
    data: bytes = message.SerializeToString()
    return data
