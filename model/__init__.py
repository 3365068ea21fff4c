"""MNIST data, the ConvNet, its training job and its TorchScript artifact."""
