"""Load tests and benchmarks of the digits gateway.

- ``loadtest.locustfile``: Locust users that send real MNIST digits and check every answer.
- ``loadtest.runner``: headless Locust with service-level objectives (``digits loadtest``).
- ``loadtest.benchmark``: one workload against the gateway and its alternatives, side by side
  (``digits benchmark``), driven by ``wrk``.
- ``loadtest.samples``: the MNIST test digits shipped in ``loadtest/samples/``.
"""
