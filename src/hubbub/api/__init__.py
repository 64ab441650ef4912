"""HTTP routes: FastAPI routers for most of the API, raw ASGI for the hot paths."""
