"""Drive the editors' app over real HTTP: a client that keeps cookies itself and logs in."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import httpx

from publisher.accounts import users
from publisher.accounts.models import Role
from publisher.db import transaction
from publisher.site import Site

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def add_user(site: Site, email: str, role: Role) -> None:
    """Create a user with the shared test password."""
    async with transaction(site.engine) as session:
        await users.add(session, email, role, PASSWORD, site.clock.now())


async def add_editors(site: Site) -> None:
    """Create the editor and the viewer most editors' app tests log in as."""
    await add_user(site, "editor@example.org", Role.EDITOR)
    await add_user(site, "viewer@example.org", Role.VIEWER)


class AdminClient:
    """An HTTP client that keeps cookies by hand (the site is https, the test server http)."""

    def __init__(self, base: str, *, ip: str | None = None) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []
        headers = {"X-Forwarded-For": ip} if ip else {}
        self.http = httpx.Client(base_url=base, timeout=60, follow_redirects=False, headers=headers)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def _remember(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            self.set_cookie_headers.append(header)
            parsed = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request with the kept cookies and remember the new ones."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.http.request(method, path, headers=headers, **kwargs)
        self._remember(response)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET a path."""
        return self.request("GET", path, **kwargs)

    def csrf(self, path: str) -> str:
        """Load a page and return the CSRF token of its first form."""
        found = CSRF.search(self.get(path).text)
        assert found is not None, f"no CSRF token on {path}"
        return found.group(1)

    def post(
        self, path: str, data: dict[str, str], *, csrf_from: str | None = None
    ) -> httpx.Response:
        """POST a form, with the CSRF token of ``csrf_from`` (a page) unless given in data."""
        if "csrf" not in data and csrf_from is not None:
            data = {**data, "csrf": self.csrf(csrf_from)}
        return self.request("POST", path, data=data)

    def login(self, email: str, password: str = PASSWORD, code: str = "") -> httpx.Response:
        """Log in through the form."""
        return self.post(
            "/admin/login",
            {"email": email, "password": password, "code": code},
            csrf_from="/admin/login",
        )
