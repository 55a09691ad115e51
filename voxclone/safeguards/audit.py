"""Append-only, hash-chained audit log in SQLite.

Each entry's hash is an HMAC over the previous hash and the entry, keyed by a secret file beside
the database: editing, deleting or reordering rows breaks the chain, and rewriting the whole chain
needs the key. Triggers refuse UPDATE and DELETE through SQLite itself. Entries name voices by
their random id, never by the person's name, and speech by a hash of its text, so deleting a voice
leaves nothing personal behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import VoxcloneError

GENESIS = "0" * 64
EVENTS = {
    "consent_statement",
    "consent_verified",
    "consent_failed",
    "consent_waiver",
    "voice_built",
    "speech_generated",
    "watermark_disabled",
    "voice_exported",
    "voice_imported",
    "voice_deleted",
    "clone_refused",
    "protected_added",
    "protected_removed",
    "account_created",
    "account_closed",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    event TEXT NOT NULL,
    voice_id TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditError(VoxcloneError):
    """The audit log cannot be written or read."""


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    event: str
    voice_id: str | None
    details: dict
    prev_hash: str
    hash: str

    def as_dict(self) -> dict:
        return {
            "seq": self.seq,
            "time": self.time,
            "event": self.event,
            "voice_id": self.voice_id,
            "details": self.details,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    problem: str = ""
    first_bad_seq: int | None = None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _payload(seq: int, time: str, event: str, voice_id: str | None, details: str) -> bytes:
    return json.dumps([seq, time, event, voice_id, details], separators=(",", ":")).encode()


class AuditLog:
    """``AuditLog(path).append(event, voice_id=..., **details)``; ``verify()`` checks the chain."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.key_path = self.path.with_suffix(".key")
        self.head_path = self.path.with_suffix(".head")  # the newest (seq, hash): exposes a cut-off tail
        self._lock = threading.Lock()
        self._key: bytes | None = None

    def _secret(self) -> bytes:
        if self._key is None:
            if not self.key_path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.key_path.with_suffix(f".key.{os.getpid()}.part")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(32))
                try:
                    os.link(tmp, self.key_path)  # never replaces a key another process just made
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink(missing_ok=True)
            self._key = self.key_path.read_bytes()
            if len(self._key) != 32:
                raise AuditError(f"audit key {self.key_path} is damaged ({len(self._key)} bytes, expected 32)")
        return self._key

    def _connect(self, create: bool = False) -> sqlite3.Connection:
        """A connection; ``create`` makes the table and its triggers if missing (writers only, so a
        reader never repairs the evidence that someone removed the triggers)."""
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            if create:
                con.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise AuditError(f"audit log {self.path} is unreadable: {e}") from e
        return con

    def _hash(self, prev: str, payload: bytes) -> str:
        return hmac.new(self._secret(), prev.encode() + payload, hashlib.sha256).hexdigest()

    def append(self, event: str, voice_id: str | None = None, **details) -> Entry:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        body = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        time = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        with self._lock:
            con = self._connect(create=True)
            try:
                con.execute("BEGIN IMMEDIATE")  # one writer at a time across processes
                row = con.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
                digest = self._hash(prev, _payload(seq, time, event, voice_id, body))
                con.execute(
                    "INSERT INTO entries (seq, time, event, voice_id, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
                    (seq, time, event, voice_id, body, prev, digest),
                )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            finally:
                con.close()
            self._write_head(seq, digest)
        return Entry(seq, time, event, voice_id, details, prev, digest)

    def _write_head(self, seq: int, digest: str) -> None:
        head = self._read_head()
        if head and head[0] >= seq:
            return  # another process already recorded a newer entry
        tmp = self.head_path.with_suffix(f".head.{os.getpid()}.{threading.get_ident()}.part")
        tmp.write_text(json.dumps({"seq": seq, "hash": digest}), encoding="utf-8")
        os.replace(tmp, self.head_path)

    def _read_head(self) -> tuple[int, str] | None:
        try:
            head = json.loads(self.head_path.read_text(encoding="utf-8"))
            return int(head["seq"]), str(head["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def entries(self, voice_id: str | None = None, limit: int | None = None) -> list[Entry]:
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            sql, args = "SELECT seq, time, event, voice_id, details, prev_hash, hash FROM entries", []
            if voice_id:
                sql, args = sql + " WHERE voice_id = ?", [voice_id]
            sql += " ORDER BY seq"
            rows = con.execute(sql, args).fetchall()
        finally:
            con.close()
        out = [Entry(r[0], r[1], r[2], r[3], _loads(r[4]), r[5], r[6]) for r in rows]
        return out[-limit:] if limit else out

    def verify(self) -> Verification:
        """Recompute the chain; name the first entry that does not fit."""
        if not self.path.exists():
            return Verification(True, 0)
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT seq, time, event, voice_id, details, prev_hash, hash FROM entries ORDER BY seq"
            ).fetchall()
            triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        finally:
            con.close()
        prev, expected_seq = GENESIS, 1
        for seq, time, event, voice_id, details, prev_hash, digest in rows:
            if seq != expected_seq:
                return Verification(False, len(rows), f"entry {expected_seq} is missing", expected_seq)
            if prev_hash != prev:
                return Verification(False, len(rows), f"entry {seq} does not follow entry {seq - 1}", seq)
            if not hmac.compare_digest(self._hash(prev, _payload(seq, time, event, voice_id, details)), digest):
                return Verification(False, len(rows), f"entry {seq} was altered", seq)
            prev, expected_seq = digest, seq + 1
        head = self._read_head()
        if head and head[0] > len(rows):
            return Verification(False, len(rows), f"entries {len(rows) + 1}..{head[0]} were removed", len(rows) + 1)
        if head and head[1] != rows[head[0] - 1][6]:
            return Verification(False, len(rows), f"entry {head[0]} differs from the recorded head", head[0])
        if not {"entries_no_update", "entries_no_delete"} <= triggers:
            return Verification(False, len(rows), "the append-only triggers were removed")
        return Verification(True, len(rows))


def _loads(body: str) -> dict:
    try:
        return json.loads(body)
    except ValueError:
        return {"unreadable": body[:80]}
