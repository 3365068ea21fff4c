"""The gRPC adapter: the Open Inference Protocol's ``inference.GRPCInferenceService`` (KServe / Triton gRPC) on its
own port (``DIGITS_GRPC_PORT``), translating messages to the same inference object as /v1 and /v2.

``generated/`` holds the protocol's .proto and the Python modules protoc made from it (``make grpc-stubs``)."""
