"""Load tests of the digits gateway.

- ``loadtest.locustfile``: Locust users that send real MNIST digits and check every answer.
- ``loadtest.runner``: headless Locust with service-level objectives (``digits loadtest``).
- ``loadtest.soak``: a long open-loop run of mixed and bad requests (``digits soak``).
- ``loadtest.samples``: the MNIST test digits shipped in ``loadtest/samples/``.

The side-by-side benchmark (``digits benchmark``) is the top-level ``bench`` package of the source checkout.
"""
