"""The HTTP adapter: dependencies, request reading, the response class, error handlers, middleware, routes."""
