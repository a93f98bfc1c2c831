"""The projectors' names: their own light module, so that the `argus` command line can offer
them (`argus project --projector`) without importing the registry and the server with it."""

from __future__ import annotations

from typing import Final

ALL_PROJECTORS: Final = ("rollups", "series-index", "cold-archive")
