"""Where the model runs: in this process (``embedded``) or in TorchServe (``torchserve``)."""
