"""Accounts and API keys for the server, in SQLite.

Keys are shown once when made and stored only as SHA-256 digests (they are 256-bit random
strings, so a plain digest cannot be brute-forced). Each account owns a folder of its own
(voice library, drafts); an account never opens another's folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import VoxcloneError

KEY_PREFIX = "vx-"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    admin INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS keys (
    digest TEXT PRIMARY KEY,
    account TEXT NOT NULL REFERENCES accounts(id),
    hint TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
"""


class AccountError(VoxcloneError, ValueError):
    """An account name is invalid or taken, or an account does not exist."""


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    admin: bool
    created: str

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "admin": self.admin, "created": self.created}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Accounts:
    """The server's accounts. Thread-safe; every change is one transaction."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "accounts.sqlite"
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def folder(self, account: Account) -> Path:
        return self.root / "accounts" / account.id

    def create(self, name: str, admin: bool = False) -> tuple[Account, str]:
        """A new account and its first key (the only time the key is shown)."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise AccountError(f"account name {name!r}: use 1-64 letters, digits, space, '.', '_', '@' or '-'")
        acct = Account(secrets.token_hex(8), name, bool(admin), _now())
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO accounts (id, name, admin, created) VALUES (?, ?, ?, ?)",
                    (acct.id, acct.name, int(acct.admin), acct.created),
                )
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                raise AccountError(f"an account named {name!r} already exists") from None
            db.execute(
                "INSERT INTO keys (digest, account, hint, created) VALUES (?, ?, ?, ?)",
                (_digest(key), acct.id, key[-4:], acct.created),
            )
            db.execute("COMMIT")
        return acct, key

    def new_key(self, account_id: str) -> str:
        acct = self.get(account_id)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._connect() as db:
            db.execute(
                "INSERT INTO keys (digest, account, hint, created) VALUES (?, ?, ?, ?)",
                (_digest(key), acct.id, key[-4:], _now()),
            )
        return key

    def authenticate(self, key: str | None) -> Account | None:
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        with self._connect() as db:
            row = db.execute(
                "SELECT a.id, a.name, a.admin, a.created FROM keys k JOIN accounts a ON a.id = k.account "
                "WHERE k.digest = ? AND k.revoked = 0 AND a.disabled = 0",
                (_digest(key),),
            ).fetchone()
        return Account(row[0], row[1], bool(row[2]), row[3]) if row else None

    def get(self, account_id: str) -> Account:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, name, admin, created FROM accounts WHERE id = ? AND disabled = 0", (account_id,)
            ).fetchone()
        if not row:
            raise AccountError(f"no account {account_id!r}")
        return Account(row[0], row[1], bool(row[2]), row[3])

    def list(self) -> list[Account]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, name, admin, created FROM accounts WHERE disabled = 0 ORDER BY created, name"
            ).fetchall()
        return [Account(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def has_admin(self) -> bool:
        return any(a.admin for a in self.list())

    def disable(self, account_id: str) -> None:
        """Close an account: its keys stop working at once. Its voices are deleted by the caller."""
        self.get(account_id)
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE accounts SET disabled = 1, name = name || ' (closed ' || id || ')' WHERE id = ?", (account_id,)
            )
            db.execute("UPDATE keys SET revoked = 1 WHERE account = ?", (account_id,))
            db.execute("COMMIT")
