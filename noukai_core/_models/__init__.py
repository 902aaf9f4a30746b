"""Pydantic models of the wire, one module per family (DESIGN: "Models are the wire")."""
