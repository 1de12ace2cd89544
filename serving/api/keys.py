"""API keys: created once, stored only as salted scrypt hashes, checked in constant time.

A key reads `cs_<key id>_<secret>`. The key file (JSON, mode 0600, in the custscore home) holds
per key its name, id, salt, scrypt parameters and hash, creation and revocation times; never
the key. The id picks the one record to check, so a request costs one scrypt at most, not one per
key; unknown ids, wrong secrets and revoked keys take the same path and the same time (a scrypt
of the presented secret against a decoy record) and give the same answer.

scrypt is slow on purpose (~50 ms, 16 MiB), which a service answering in milliseconds cannot
pay per request: a key verified once is remembered in memory (by its SHA-256, never the key)
until the key file changes, so a revocation takes effect at the next request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KEY_PREFIX = "cs_"
KEY_FILE_NAME = "api_keys.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_KEY_PATTERN = re.compile(r"^cs_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")
# OWASP's scrypt floor (N=2^14 would be 16 MiB; 2^15 doubles it): one check ~50 ms here.
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class KeyFileError(ValueError):
    """The key file is unreadable or a key operation cannot be done (names the file and what to do)."""


@dataclass(frozen=True)
class KeyRecord:
    name: str
    key_id: str
    created_at: str
    revoked_at: str | None


def _scrypt(secret: str, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=params["n"], r=params["r"], p=params["p"],
                          dklen=params["dklen"], maxmem=256 * params["n"] * params["r"] + 1024 * 1024)


class ApiKeys:
    """The key file of a custscore home: create, list, revoke, verify."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._verified: dict[bytes, str] = {}  # sha256(key) -> name, for the key file state below
        self._verified_for: tuple | None = None
        self._lock = threading.Lock()
        # One scrypt at a time: 100 clients arriving at once with the same new key wait for one check (then
        # hit the memory) instead of running 100 checks of 16 MiB each; wrong keys cannot use all cores either.
        self._checking = threading.Lock()
        self._decoy = {"salt": secrets.token_hex(16), "hash": "00" * SCRYPT["dklen"], "scrypt": SCRYPT}

    # ------------------------------------------------------------------ managing

    def create(self, name: str) -> str:
        """Add a key named `name` and return it (the only time it is shown)."""
        if not NAME_PATTERN.match(name):
            raise KeyFileError(f"key name {name!r} is not allowed; use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        with self._file_lock():
            keys = self._load()
            if any(k["name"] == name and k["revoked_at"] is None for k in keys):
                raise KeyFileError(f"{self.path}: a key named {name!r} exists; revoke it first or choose another name")
            key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
            salt = secrets.token_bytes(16)
            keys.append({"name": name, "key_id": key_id, "salt": salt.hex(), "scrypt": dict(SCRYPT),
                         "hash": _scrypt(secret, salt, SCRYPT).hex(), "created_at": _now(), "revoked_at": None})
            self._save(keys)
        return f"{KEY_PREFIX}{key_id}_{secret}"

    def list(self) -> list[KeyRecord]:
        """Every key ever created, revoked ones included (oldest first)."""
        return [KeyRecord(k["name"], k["key_id"], k["created_at"], k["revoked_at"]) for k in self._load()]

    def revoke(self, name: str) -> KeyRecord:
        """Revoke the active key named `name`; it is refused from the next request on."""
        with self._file_lock():
            keys = self._load()
            active = [k for k in keys if k["name"] == name and k["revoked_at"] is None]
            if not active:
                names = sorted({k["name"] for k in keys if k["revoked_at"] is None})
                raise KeyFileError(f"{self.path}: no active key named {name!r}; active keys: {names or 'none'}")
            active[0]["revoked_at"] = _now()
            self._save(keys)
        k = active[0]
        return KeyRecord(k["name"], k["key_id"], k["created_at"], k["revoked_at"])

    # ------------------------------------------------------------------ checking

    def remembered(self, presented: str | None) -> str | None:
        """The name of `presented` if it was verified since the key file last changed (no scrypt: microseconds)."""
        if not presented:
            return None
        state = self._file_state()
        fingerprint = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            return self._verified.get(fingerprint) if self._verified_for == state else None

    def verify(self, presented: str | None) -> str | None:
        """The name of the active key `presented` is, or None (missing, malformed, unknown, wrong or revoked)."""
        if not presented:
            return None
        state = self._file_state()
        fingerprint = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            if self._verified_for != state:
                self._verified, self._verified_for = {}, state
            name = self._verified.get(fingerprint)
        if name is not None:
            return name
        with self._checking:
            with self._lock:
                name = self._verified.get(fingerprint) if self._verified_for == state else None
            if name is not None:
                return name  # checked by another request while this one waited
            name = self._check(presented)
            if name is not None:
                with self._lock:
                    if self._verified_for == state:
                        self._verified[fingerprint] = name
        return name

    def _check(self, presented: str) -> str | None:
        match = _KEY_PATTERN.match(presented)
        key_id, secret = match.groups() if match else ("", presented[:64])
        record = next((k for k in self._load() if k["key_id"] == key_id), None)
        candidate = record or self._decoy
        digest = _scrypt(secret, bytes.fromhex(candidate["salt"]), candidate["scrypt"])
        equal = hmac.compare_digest(digest, bytes.fromhex(candidate["hash"]))
        if record is None or not equal or record["revoked_at"] is not None:
            return None
        return record["name"]

    def _file_state(self) -> tuple | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    # ------------------------------------------------------------------ the file

    def _load(self) -> list[dict]:
        try:
            body = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"{self.path}: cannot read the API key file ({exc}); restore it or move it away and create keys again") from exc
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list):
            raise KeyFileError(f"{self.path}: not an API key file (no 'keys' list); move it away and create keys again")
        return keys

    def _save(self, keys: list[dict]) -> None:
        """Write the file atomically with mode 0600: a new file created private, fsynced, renamed over the old one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"format": 1, "keys": keys}, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise key changes of several processes (two `keys create` at once both keep their key)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
