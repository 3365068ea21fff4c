"""The side-by-side benchmark (``digits benchmark``): one workload against the gateway and its alternatives,
driven by ``wrk``.

It runs from a source checkout only: its peers (``bench/peers/``), their virtualenv, CPU pinning and the
exported older commits are no part of the installed package, which ships no ``bench``.

- ``bench.benchmark``: the run: every target, round after round; ``bench.report``: benchmark.md and .json.
- ``bench.targets``, ``bench.peer_targets``, ``bench.torchserve_targets``, ``bench.previous_model``: what is measured.
- ``bench.previous``: an earlier commit's packages, out of git (``--previous-ref``).
"""
