"""Operations tooling around the served package: local servers, TorchServe launcher and archive, monitoring."""
