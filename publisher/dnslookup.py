"""DNS TXT lookups (the only dnspython import), for `publisher doctor`."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.resolver


async def txt_records(name: str, lifetime: float = 5.0) -> list[str] | None:
    """Return the TXT strings at ``name`` ([] when none); None when DNS cannot be reached."""
    try:
        answer = await dns.asyncresolver.resolve(name, "TXT", lifetime=lifetime)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError):
        return None
    # A long TXT record is split into 255-byte strings; they join without a separator.
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
