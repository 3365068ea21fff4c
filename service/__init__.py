"""The digits gateway: validation, preprocessing, batching, backends, metrics."""
