"""Who is calling: the bearer token, its user, and what their role and scope allow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.accounts import audit
from publisher.accounts.models import ApiToken, User
from publisher.accounts.permissions import Action, token_allows
from publisher.accounts.tokens import authenticate_token
from publisher.db import transaction
from publisher.site import Site
from publisher.web.api.errors import forbidden, unauthorized

_bearer = HTTPBearer(auto_error=False, description="An API token: `publisher tokens create`.")


@dataclass(frozen=True)
class Caller:
    """The user behind a request's token, and where the request came from."""

    user: User
    token: ApiToken
    ip: str

    @property
    def actor(self) -> str:
        """Return who the audit log names."""
        return self.user.email

    @property
    def source(self) -> str:
        """Return how the audit log says the change arrived."""
        return f"api token {self.token.name} from {self.ip}"

    async def audit(
        self, session: AsyncSession, site: Site, action: str, target: str, detail: str = ""
    ) -> None:
        """Write one audit line for a change, in the change's own transaction."""
        await audit.record(
            session,
            actor=self.actor,
            action=action,
            target=target,
            source=self.source,
            detail=detail,
            at=site.clock.now(),
        )


def site_of(request: Request) -> Site:
    """Return the site the app serves."""
    site: Site = request.app.state.site
    return site


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Authenticate the bearer token (recording its use) or answer 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("missing bearer token")
    site = site_of(request)
    async with transaction(site.engine) as session:
        found = await authenticate_token(session, credentials.credentials, site.clock.now())
    if found is None:
        raise unauthorized("invalid or revoked token")
    user, token = found
    return Caller(user, token, request.client.host if request.client else "")


def allowed(action: Action) -> Any:
    """Return a dependency answering 403 unless the caller's role and scope allow ``action``."""

    async def check(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not token_allows(who.user, who.token, action):
            if action.writes and who.token.scope == "read":
                raise forbidden(f"this token is read-only; {action.value} needs a write token")
            raise forbidden(f"role {who.user.role} may not {action.value}")
        return who

    return Depends(check)


Reader = Annotated[Caller, allowed(Action.READ)]
ContentWriter = Annotated[Caller, allowed(Action.WRITE_CONTENT)]
SubscriberWriter = Annotated[Caller, allowed(Action.WRITE_SUBSCRIBERS)]
Sender = Annotated[Caller, allowed(Action.SEND)]
