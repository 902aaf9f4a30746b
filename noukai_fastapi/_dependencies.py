"""FastAPI-only names: the `NoukaiDep` annotation.

Kept apart so `import noukai_fastapi` works in a plain Starlette app without
FastAPI installed; the package's `__getattr__` imports this module lazily.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from noukai_core import AsyncNoukai
from noukai_fastapi._lifespan import get_noukai

NoukaiDep = Annotated[AsyncNoukai, Depends(get_noukai)]
"""A route parameter typed `NoukaiDep` receives the app's `AsyncNoukai`."""
