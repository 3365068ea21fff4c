"""The gateway's alternatives in the benchmark, run as servers by ``loadtest.targets`` and ``loadtest.peer_targets``.

- ``echo_app``: FastAPI returning the request body (the HTTP ceiling), under uvicorn like the gateway.
- ``naive_app``: FastAPI calling the TorchScript model once per request (no batching), under uvicorn.
- ``litserve_app``, ``bentoml_app``: LitServe and BentoML with their own dynamic batching, in the peers'
  virtualenv (``requirements.txt`` here; ``loadtest.peers_venv``).
- ``digits_model``: what the model peers share: the gateway's pipeline and model runner.

The package never imports these modules; the servers do.
"""
