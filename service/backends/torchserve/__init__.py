"""The model in TorchServe: the gateway's client, the tensor wire format, and the handler packed in the archive."""
