"""The Open Inference Protocol v2 (KServe / Triton REST), framework-free: its JSON objects, the binary tensor
data extension, the model's metadata from the card, and the way from an inference request to the pipeline's
inputs and from a batch output to the response."""
