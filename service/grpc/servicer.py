"""The RPCs of ``inference.GRPCInferenceService``: each checks the caller's key, translates its message for the
served models (the version asked for, or the one the traffic policy picks) and is counted like an HTTP route
(route ``grpc:<Method>``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from service.core.api_keys import ApiKeys, Caller, bearer_key, require_admin
from service.core.errors import ApiError, ErrorCode
from service.core.inference import Inference
from service.core.metrics import Metrics
from service.core.oip.inference import TensorCall, check_inference, output_tensors
from service.core.oip.metadata import MODEL_NAME, server_metadata
from service.core.served_models import ServedModels
from service.grpc import repository
from service.grpc.generated import predict_v2_pb2 as pb
from service.grpc.messages import infer_response, inference_request, model_metadata
from service.grpc.status import details, grpc_status, trailing_metadata

log = logging.getLogger(__name__)

# The spec's name, the one on the wire (the .proto's package differs: see there).
SERVICE = "inference.GRPCInferenceService"
# The protocol's extensions this service has.
GRPC_EXTENSIONS = frozenset({"binary_tensor_data", "model_repository"})
ROUTE_PREFIX = "grpc:"
INFER_ROUTE = ROUTE_PREFIX + "ModelInfer"
# gRPC calls are HTTP/2 POSTs; the status label is the HTTP status of the answer's error code (200 when none), so
# the dashboards' and alerts' error rates read gRPC as they read HTTP.
METHOD_LABEL = "POST"
OK = 200


class InferenceService:
    """The service's handlers for a gRPC server (:meth:`handler`), over the served model versions.

    ``sticky`` is what keeps a client on one version while a candidate takes a share (DIGITS_TRAFFIC_STICKY):
    ``None`` (each call on its own), ``"api_key"`` (the caller's key) or the name of a metadata key."""

    def __init__(self, models: ServedModels, metrics: Metrics, keys: ApiKeys | None, sticky: str | None) -> None:
        self.models = models
        self.metrics = metrics
        self.keys = keys
        self.sticky = sticky

    def handler(self) -> grpc.GenericRpcHandler:
        rpcs: dict[str, tuple[Callable[[Any, Metadata], Awaitable[Message]], type[Message]]] = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": (self.model_infer, pb.ModelInferRequest),
            "RepositoryIndex": (self.repository_index, pb.RepositoryIndexRequest),
            "RepositoryModelLoad": (self.repository_model_load, pb.RepositoryModelLoadRequest),
            "RepositoryModelUnload": (self.repository_model_unload, pb.RepositoryModelUnloadRequest),
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

    async def server_live(self, _: pb.ServerLiveRequest, __: Metadata) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, _: pb.ServerReadyRequest, __: Metadata) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self.models.ready())

    async def model_ready(self, request: pb.ModelReadyRequest, _: Metadata) -> pb.ModelReadyResponse:
        try:
            inference = self._model(request.name, request.version)
        except ApiError as error:
            if error.code != ErrorCode.not_ready:
                raise
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=await inference.ready())

    async def server_metadata(self, _: pb.ServerMetadataRequest, __: Metadata) -> pb.ServerMetadataResponse:
        metadata = server_metadata()
        extensions = [name for name in metadata["extensions"] if name in GRPC_EXTENSIONS]
        return pb.ServerMetadataResponse(**{**metadata, "extensions": extensions})

    async def model_metadata(self, request: pb.ModelMetadataRequest, _: Metadata) -> pb.ModelMetadataResponse:
        metadata = self._model(request.name, request.version).protocol_model.metadata()
        if not request.version:
            metadata = {**metadata, "versions": sorted(self.models.versions)}
        return model_metadata(metadata)

    async def model_infer(self, request: pb.ModelInferRequest, metadata: Metadata) -> pb.ModelInferResponse:
        version = request.model_version or None
        if request.model_name != MODEL_NAME:
            self._model(request.model_name, request.model_version)  # the protocol's unknown_model

        async def read(inference: Inference) -> TensorCall:
            return check_inference(*inference_request(request), inference.protocol_model, inference.limits)

        outcome = await self.models.run(
            read, version, self._routing_key(metadata), route=INFER_ROUTE, headers=metadata.values
        )
        model = outcome.inference.protocol_model
        return outcome.encode(
            lambda: infer_response(outcome.call, output_tensors(outcome.call, outcome.output, model), model.version)
        )

    async def repository_index(
        self, request: pb.RepositoryIndexRequest, metadata: Metadata
    ) -> pb.RepositoryIndexResponse:
        require_admin(metadata.caller)
        return repository.index(self.models, request)

    async def repository_model_load(
        self, request: pb.RepositoryModelLoadRequest, metadata: Metadata
    ) -> pb.RepositoryModelLoadResponse:
        require_admin(metadata.caller)
        return await repository.load(self.models, request)

    async def repository_model_unload(
        self, request: pb.RepositoryModelUnloadRequest, metadata: Metadata
    ) -> pb.RepositoryModelUnloadResponse:
        require_admin(metadata.caller)
        return await repository.unload(self.models, request)

    def _model(self, name: str, version: str) -> Inference:
        """The loaded ``version`` of the model ``name`` (empty: the traffic policy's stable pick)."""
        if name != MODEL_NAME:
            raise ApiError(ErrorCode.unknown_model, f"no model named '{name}'; this server serves '{MODEL_NAME}'")
        return self.models.select(version or None)

    def _routing_key(self, metadata: Metadata) -> str | None:
        if self.sticky is None:
            return None
        if self.sticky == "api_key":
            caller = metadata.caller
            return None if caller is None else str(caller.name)
        return metadata.values.get(self.sticky.lower())

    def _served(
        self, name: str, rpc: Callable[[Any, Metadata], Awaitable[Message]]
    ) -> Callable[[Message, grpc.aio.ServicerContext], Awaitable[Message]]:
        route = ROUTE_PREFIX + name

        async def serve(request: Message, context: grpc.aio.ServicerContext) -> Message:
            started = time.perf_counter()
            status = OK
            self.metrics.inflight.inc()
            try:
                values = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
                return await rpc(request, Metadata(values, self._authorize(values)))
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

    def _authorize(self, metadata: dict[str, str]) -> Caller | None:
        """The caller whose key the ``authorization`` metadata carries (``unauthorized`` without a known one)."""
        if self.keys is None:
            return None
        key = bearer_key(metadata.get("authorization", ""))
        caller = None if key is None else self.keys.identify(key)
        if caller is None:
            raise ApiError(ErrorCode.unauthorized, "this API needs a key: send metadata 'authorization: Bearer <key>'")
        return caller


@dataclass(frozen=True)
class Metadata:
    """A call's text metadata (keys lower-case, as gRPC sends them) and the caller its key names."""

    values: dict[str, str]
    caller: Caller | None


def _internal(exc: Exception) -> ApiError:
    log.error("gRPC call failed", exc_info=exc)
    return ApiError(ErrorCode.internal_error, "internal error")


def _serialize(message: Message) -> bytes:
    data: bytes = message.SerializeToString()
    return data
