"""Per-client rate limits (Flask-Limiter, in memory: one web process per portal replica)."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", default_limits=[])
