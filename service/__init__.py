"""The digits gateway: a framework-free core, the HTTP adapter, the pages and the backends, composed in ``app``."""
