"""C2PA Content Credentials: a signed manifest saying "created by voxclone, trained algorithmic media".

Signed offline with ``c2pa-python``. Without a certificate of your own (``VOXCLONE_C2PA_CERT`` = a PEM
chain, ``VOXCLONE_C2PA_KEY`` = its ES256 private key), each installation makes a local CA and signing
certificate once (``<VOXCLONE_HOME>/c2pa/``): manifests then verify as intact ("Valid") but are not
"Trusted" by validators, since no public trust list knows that CA. WAV, FLAC and MP3 carry a
manifest; Ogg has no C2PA binding, so Ogg files rely on the watermark and labels.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import threading
from pathlib import Path

from .. import __version__

log = logging.getLogger(__name__)

MIME = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}
# c2pa-rs passes the whole signed file through memory once; above this, files go without a manifest
MAX_SIGN_BYTES = 100 << 20
SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

_lock = threading.Lock()
_signer = None


def _home() -> Path:
    from ..engine.assets import home

    return home() / "c2pa"


def _make_local_chain(folder: Path) -> tuple[bytes, bytes]:
    """A CA and an ES256 signing certificate for this installation (written once, key 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voxclone")]
        )

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("voxclone local CA"))
        .issuer_name(name("voxclone local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("voxclone synthetic speech"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    pkey = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data, mode in (("key.pem", pkey, 0o600), ("chain.pem", chain, 0o644)):
        tmp = folder / f".{fname}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, folder / fname)
    return chain, pkey


def signer():
    """The process-wide C2PA signer (the user's certificate, else this installation's local one)."""
    global _signer
    with _lock:
        if _signer is None:
            import c2pa

            cert, key = os.environ.get("VOXCLONE_C2PA_CERT"), os.environ.get("VOXCLONE_C2PA_KEY")
            if cert and key:
                chain, pkey = Path(cert).read_bytes(), Path(key).read_bytes()
            else:
                folder = _home()
                if (folder / "key.pem").is_file() and (folder / "chain.pem").is_file():
                    chain, pkey = (folder / "chain.pem").read_bytes(), (folder / "key.pem").read_bytes()
                else:
                    chain, pkey = _make_local_chain(folder)
            _signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, pkey, None))
        return _signer


def manifest(voice: str, voice_id: str | None, waiver: str | None) -> dict:
    action = {"action": "c2pa.created", "digitalSourceType": SOURCE_TYPE, "softwareAgent": f"voxclone {__version__}"}
    params = {"voice": voice, **({"voice_id": voice_id} if voice_id else {}), "watermark": "perth"}
    if waiver:
        params["consent_waiver"] = waiver
    action["parameters"] = params
    return {
        "claim_generator_info": [{"name": "voxclone", "version": __version__}],
        "title": "synthetic speech",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }


def _sign(mime: str, info: dict, src, dest) -> bool:
    """Write ``src`` with a signed manifest into ``dest``; on failure log it and return False.

    A file then goes out without a manifest: the watermark and the labels, which are not
    optional, are already in it.
    """
    try:
        import c2pa

        c2pa.Builder.from_json(json.dumps(info)).sign(signer(), mime, src, dest)
        return True
    except Exception as e:
        log.warning("C2PA signing failed (%s); the file carries the watermark and labels only", e)
        return False


def sign_bytes(data: bytes, fmt: str, info: dict) -> bytes:
    """``data`` (a whole wav/flac/mp3 file) with a signed manifest embedded; other formats unchanged."""
    mime = MIME.get(fmt)
    if mime is None or not info:
        return data
    out = io.BytesIO()
    return out.getvalue() if _sign(mime, info, io.BytesIO(data), out) else data


def sign_file(path: Path, fmt: str, info: dict) -> None:
    """Embed a signed manifest into the finished file at ``path``, file to file."""
    mime = MIME.get(fmt)
    if mime is None or not info:
        return
    size = path.stat().st_size
    if size > MAX_SIGN_BYTES:
        log.warning(
            "%s is %d MB: too large to sign with C2PA in bounded memory; it carries the watermark and labels",
            path.name,
            size >> 20,
        )
        return
    signed = path.with_name(path.name + ".c2pa")
    try:
        with open(path, "rb") as src, open(signed, "w+b") as dest:
            ok = _sign(mime, info, src, dest)
        if ok:
            os.replace(signed, path)
    except OSError as e:
        log.warning("C2PA signing failed (%s); the file carries the watermark and labels only", e)
    finally:
        signed.unlink(missing_ok=True)


def read(path: str | os.PathLike) -> dict | None:
    """The active manifest's claim and validation state, or None when the file carries none."""
    p = Path(path)
    mime = MIME.get(p.suffix.lower().lstrip("."))
    if mime is None:
        return None
    try:
        import c2pa

        with open(p, "rb") as f:
            reader = c2pa.Reader(mime, f)
            active = reader.get_active_manifest() or {}
            state = reader.get_validation_state()
    except Exception:  # no manifest, or unreadable: the watermark still decides
        return None
    actions = [
        a
        for assertion in active.get("assertions", [])
        if assertion.get("label", "").startswith("c2pa.actions")
        for a in assertion.get("data", {}).get("actions", [])
    ]
    return {
        "state": state,
        "generator": ", ".join(g.get("name", "") for g in active.get("claim_generator_info", [])),
        "digital_source_type": actions[0].get("digitalSourceType") if actions else None,
        "parameters": actions[0].get("parameters") if actions else None,
    }
