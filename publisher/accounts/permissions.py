"""Who may do what: roles for people, scopes for API tokens (one table, one check)."""

from __future__ import annotations

from enum import StrEnum

from publisher.accounts.errors import Forbidden
from publisher.accounts.models import ApiToken, Role, TokenScope, User


class Action(StrEnum):
    """Kinds of operation the admin app and the API guard."""

    READ = "read"  # see articles, subscribers, editions, the dashboard, the audit log
    WRITE_CONTENT = "write_content"  # create, edit, publish, delete articles
    WRITE_SUBSCRIBERS = "write_subscribers"  # add, suppress, delete, import subscribers
    SEND = "send"  # test copies, pause and resume editions, announcements
    MANAGE_ACCOUNTS = "manage_accounts"  # users and API tokens, seen or changed

    @property
    def writes(self) -> bool:
        """Tell whether the action changes something (a read token may not)."""
        return self is not Action.READ


_ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.EDITOR: frozenset(
        {Action.READ, Action.WRITE_CONTENT, Action.WRITE_SUBSCRIBERS, Action.SEND}
    ),
    Role.VIEWER: frozenset({Action.READ}),
}


def allows(role: Role | str, action: Action) -> bool:
    """Tell whether a role may perform an action."""
    return action in _ROLE_ACTIONS[Role(role)]


def token_allows(user: User, token: ApiToken | None, action: Action) -> bool:
    """Tell whether a user (through a token, when given) may perform an action."""
    if not allows(user.role, action):
        return False
    return not (token is not None and token.scope == TokenScope.READ and action.writes)


def require(user: User, action: Action, token: ApiToken | None = None) -> None:
    """Raise Forbidden unless the user (and the token, when given) may perform an action."""
    if not allows(user.role, action):
        raise Forbidden(f"{user.email} ({user.role}) may not {action.value.replace('_', ' ')}")
    if not token_allows(user, token, action):
        assert token is not None
        raise Forbidden(f"token {token.name!r} is read-only: it may not {action.value}")
