"""ed25519 keys and bundle signatures (PyNaCl).

Key files are one line of hex: a secret key file holds the 32-byte seed, a
public key file the 32-byte verify key. Hex keeps them printable and diffable,
and a buyer can paste the public key into any ed25519 tool.
"""
from __future__ import annotations

import json
import os

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ALGORITHM = "ed25519"


class KeyError_(ValueError):
    pass


def _read_hex(path: str, what: str) -> bytes:
    try:
        raw = open(path, "rb").read()
    except OSError as e:
        raise KeyError_(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = raw if len(raw) == 32 else b""
    if len(key) != 32:
        raise KeyError_(f"{what} {path}: expected 32 bytes as 64 hex characters")
    return key


def load_signing_key(path: str) -> SigningKey:
    return SigningKey(_read_hex(path, "signing key"))


def load_verify_key(path: str) -> VerifyKey:
    return VerifyKey(_read_hex(path, "public key"))


def keygen(prefix: str) -> tuple[str, str]:
    """Write PREFIX.key (secret, mode 0600) and PREFIX.pub; refuse to overwrite."""
    sk = SigningKey.generate()
    key_path, pub_path = prefix + ".key", prefix + ".pub"
    for p in (key_path, pub_path):
        if os.path.exists(p):
            raise KeyError_(f"{p} exists; not overwriting a key")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(bytes(sk).hex() + "\n")
    with open(pub_path, "w") as f:
        f.write(bytes(sk.verify_key).hex() + "\n")
    return key_path, pub_path


def sign(data: bytes, key: SigningKey, signed_file: str) -> dict:
    return {"algorithm": ALGORITHM, "public_key": bytes(key.verify_key).hex(),
            "signed_file": signed_file, "signature": key.sign(data).signature.hex()}


def dumps(doc: dict) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


def check(data: bytes, sig: dict, pubkey: VerifyKey | None) -> str | None:
    """None when the signature holds (for `pubkey` if given), else why not."""
    if sig.get("algorithm") != ALGORITHM:
        return f"unsupported signature algorithm {sig.get('algorithm')!r}"
    try:
        embedded = VerifyKey(bytes.fromhex(sig["public_key"]))
        signature = bytes.fromhex(sig["signature"])
    except (KeyError, ValueError, TypeError) as e:
        return f"malformed signature file: {e}"
    if pubkey is not None and bytes(pubkey) != bytes(embedded):
        return "signed by a different key than --pubkey"
    try:
        (pubkey or embedded).verify(data, signature)
    except (BadSignatureError, ValueError):
        return "signature does not match manifest.json"
    return None
