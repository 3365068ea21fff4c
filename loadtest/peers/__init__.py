"""The gateway's alternatives in the benchmark, each a small ASGI app served by uvicorn like the gateway.

- ``echo_app``: FastAPI returning the request body (the HTTP ceiling).
- ``naive_app``: FastAPI calling the TorchScript model once per request (no batching).
"""
