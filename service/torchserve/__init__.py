"""The model behind TorchServe: its handler, the archive that carries it, and a launcher."""
