"""The gateway's alternatives in the benchmark, run as servers by ``bench.targets`` and ``bench.peer_targets``.

- ``echo_app``: FastAPI returning the request body (the HTTP ceiling), under uvicorn like the gateway.
- ``naive_app``: FastAPI calling the TorchScript model once per request (no batching), under uvicorn.
- ``litserve_app``, ``bentoml_app``: LitServe and BentoML with their own dynamic batching, in the peers'
  virtualenv (``requirements.txt`` here; ``bench.peers_venv``).
- ``digits_model``: what the model peers share: the gateway's pipeline and model runner.
- ``settings``: the variables the benchmark and its peers read (the peers' virtualenv, BentoML's knobs).

The package never imports the apps; the servers do.
"""
