"""The browser half of the passthrough: a dependency-free JavaScript module.

It ships inside the package (`static/noukai-stream.js`) so every integration
serves the same file, and apps can also copy it and use it standalone.
"""

from __future__ import annotations

from pathlib import Path

#: Filesystem path of `noukai-stream.js` (exports `streamFlow` and `SSEParser`).
STREAM_SCRIPT_PATH: Path = Path(__file__).parent / "static" / "noukai-stream.js"
