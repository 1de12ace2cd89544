"""The read API over published scores (FastAPI): `create_app(reader, keys)`, API keys in `serving.api.keys`."""

from serving.api.app import create_app
from serving.api.keys import ApiKeys, KeyFileError

__all__ = ["ApiKeys", "KeyFileError", "create_app"]
