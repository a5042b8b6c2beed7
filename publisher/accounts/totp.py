"""Time-based one-time passwords, RFC 6238 (the only pyotp import)."""

from __future__ import annotations

from datetime import datetime

import pyotp

STEP_SECONDS = 30


def new_secret() -> str:
    """Return a fresh base32 TOTP secret."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    """Return the otpauth:// URI an authenticator app reads from a QR code or by hand."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def code_at(secret: str, when: datetime) -> str:
    """Return the code valid at a moment (tests and the setup page use it)."""
    return pyotp.TOTP(secret).at(when)


def matching_step(secret: str, code: str, when: datetime, last_step: int) -> int | None:
    """Return the time step a code belongs to (now or one step either side), or None.

    A step at or before ``last_step`` was used already and does not match: a code
    overheard once cannot be replayed within its 30 seconds.
    """
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = int(when.timestamp()) // STEP_SECONDS
    for candidate in (step, step - 1, step + 1):
        if candidate <= last_step:
            continue
        if pyotp.utils.strings_equal(totp.generate_otp(candidate), code):
            return candidate
    return None
