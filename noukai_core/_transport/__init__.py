"""The one door to the network: only this package imports httpx (DESIGN)."""
