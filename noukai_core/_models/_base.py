"""The one base every wire model shares.

snake_case attributes, camelCase aliases (the wire is camelCase, contract §1.4),
construction by either name, and unknown fields ignored: the server may add
fields at any time and that must never break a client already deployed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
    )
