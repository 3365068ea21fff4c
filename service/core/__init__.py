"""The serving core, free of any web framework: types, errors, schemas, decoding, preprocessing,
predictions, the model runner, the prediction pipeline, batching, metrics and settings."""
