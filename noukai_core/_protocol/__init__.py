"""Sans-I/O protocol logic: no httpx, no asyncio, no sockets (DESIGN: one rule, once).

The sync and async drivers feed these modules bytes and responses and do what
they are told; a protocol fix therefore lands in exactly one place.
"""
