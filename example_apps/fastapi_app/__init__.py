"""The FastAPI example app: a page that streams a flow live, and an API route.

Run it with `python -m example_apps.fastapi_app` (127.0.0.1:8000) against the
local dev server (`make demo` starts both).
"""
