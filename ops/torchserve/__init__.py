"""TorchServe on this machine: the archive builder, the launcher and the ``digits`` commands around them."""
