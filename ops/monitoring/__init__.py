"""`digits monitor`: the deploy stack's Prometheus, run on one machine without Docker."""
