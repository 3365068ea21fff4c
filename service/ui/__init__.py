"""The built-in pages: the network diagram, the draw-a-digit page, the live dashboard and its history."""
