"""One-off emails of the subscription flow, through the digest's machinery.

Each (kind, language, template folder) is compiled once and cached; every call only fills
in the reader's slots, so a burst of sign-ups costs microseconds per message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from publisher.clock import Clock
from publisher.config import Settings
from publisher.render import plaintext
from publisher.render.digest import chrome_context, email_site_title, new_tokens
from publisher.render.dkim import signer_from_settings
from publisher.render.i18n import choose_language, translations
from publisher.render.message import MessageTemplate
from publisher.render.mjml import compile_mjml
from publisher.render.templates import environment, render, template_source


class Notice(StrEnum):
    """Which notice of the subscription flow (the same words as delivery's mail kinds)."""

    CONFIRMATION = "confirmation"
    ALREADY_SUBSCRIBED = "already_subscribed"
    UNSUBSCRIBED = "unsubscribed"
    WELCOME = "welcome"


#: The links each notice fills in: confirm or resubscribe, or preferences plus unsubscribe.
LINKS: dict[Notice, frozenset[str]] = {
    Notice.CONFIRMATION: frozenset({"action_url"}),
    Notice.UNSUBSCRIBED: frozenset({"action_url"}),
    Notice.ALREADY_SUBSCRIBED: frozenset({"preferences_url", "unsubscribe_url"}),
    Notice.WELCOME: frozenset({"preferences_url", "unsubscribe_url"}),
}


@dataclass(frozen=True)
class _Link:
    label: str
    url: str


_cache: dict[tuple[int, str, str], tuple[Settings, MessageTemplate]] = {}
_lock = threading.Lock()


def build_notice(
    settings: Settings,
    kind: Notice,
    *,
    email: str,
    name: str,
    language: str,
    urls: Mapping[str, str],
    message_id: str,
    clock: Clock | None = None,
    bounce_token: str = "",
) -> bytes:
    """Return one notice for one reader, its links filled in from `urls`."""
    if set(urls) != LINKS[kind]:
        raise ValueError(f"{kind} needs the links {sorted(LINKS[kind])}, got {sorted(urls)}")
    template = notice_template(settings, kind, language, clock=clock)
    return template.fill(
        email=email, name=name, message_id=message_id, urls=dict(urls), bounce_token=bounce_token
    )


def notice_template(
    settings: Settings, kind: str, language: str, *, clock: Clock | None = None
) -> MessageTemplate:
    """Return the cached, pre-encoded template of one notice in one language."""
    language = choose_language(
        language, settings.site.language, user_dir=settings.site.templates_dir
    )
    key = (id(settings), kind, language)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] is settings and clock is None:
            return cached[1]
    template = _compile(settings, kind, language, clock)
    if clock is None:
        with _lock:
            if len(_cache) > 64:
                _cache.clear()
            _cache[key] = (settings, template)
    return template


def clear_cache() -> None:
    """Forget compiled notices (tests switch template folders)."""
    with _lock:
        _cache.clear()


def _compile(settings: Settings, kind: str, language: str, clock: Clock | None) -> MessageTemplate:
    tokens = new_tokens()
    context = notice_context(settings, kind, language, tokens)
    env = environment(settings.site.templates_dir, language)
    name = f"{kind}.mjml.j2"
    source, path = template_source(env, name)
    html = compile_mjml(render(env, name, context), template=path, template_text=source)
    text = plaintext.notice_text(context)
    named, anonymous = context["greeting_named"], context["greeting_anonymous"]
    return MessageTemplate(
        settings=settings,
        subject=context["subject"],
        html_body=html,
        text_body=text,
        tokens=tokens,
        greeting=_greeter(named, anonymous),
        language=language,
        list_headers=False,
        auto_submitted=True,
        clock=clock,
        signer=signer_from_settings(settings.mail),
    )


def _greeter(named: str, anonymous: str) -> Callable[[str], str]:
    def greeting(name: str) -> str:
        return named % {"name": name} if name else anonymous

    return greeting


def notice_context(
    settings: Settings, kind: str, language: str, tokens: dict[str, str]
) -> dict[str, Any]:
    """Build the template context of one notice, every string translated."""
    _ = translations(language, "email", settings.site.templates_dir).gettext
    site = email_site_title(settings)
    values = {"site": site}
    action: _Link | None = None
    secondary: list[_Link] = []
    show_email = False
    if kind == Notice.CONFIRMATION:
        subject = _("Please confirm your subscription to %(site)s") % values
        paragraphs = [
            _(
                "Thank you for subscribing to %(site)s. Please confirm that you want to "
                "receive our newsletter at this address:"
            )
            % values,
            _("The confirmation link is valid for 7 days."),
        ]
        show_email = True
        action = _Link(_("Confirm my subscription"), tokens["action_url"])
        footer = _(
            "If you did not ask to subscribe, ignore this email: you will not be "
            "subscribed and will not hear from us again."
        )
    elif kind == Notice.ALREADY_SUBSCRIBED:
        subject = _("You are already subscribed to %(site)s") % values
        paragraphs = [
            _(
                "Someone, hopefully you, asked to subscribe this address to %(site)s, "
                "but it is already subscribed. There is nothing more to do."
            )
            % values,
        ]
        action = _Link(_("Manage preferences"), tokens["preferences_url"])
        secondary = [_Link(_("Unsubscribe"), tokens["unsubscribe_url"])]
        footer = _("If you did not ask for this, you can safely ignore this email.")
    elif kind == Notice.WELCOME:
        subject = _("Welcome to %(site)s") % values
        paragraphs = [
            _(
                "Your subscription to %(site)s is confirmed. Your first digest arrives "
                "at the next sending time."
            )
            % values,
            _("You can change your language, time zone, frequency and topics at any time."),
        ]
        action = _Link(_("Manage preferences"), tokens["preferences_url"])
        secondary = [_Link(_("Unsubscribe"), tokens["unsubscribe_url"])]
        footer = _("You receive this email because you confirmed your subscription.")
    elif kind == Notice.UNSUBSCRIBED:
        subject = _("You have unsubscribed from %(site)s") % values
        paragraphs = [
            _(
                "You have been unsubscribed from %(site)s and will not receive any more "
                "emails from us at this address."
            )
            % values,
            _("Unsubscribed by mistake? You can subscribe again at any time."),
        ]
        action = _Link(_("Subscribe again"), tokens["action_url"])
        footer = _("We are sorry to see you go. Thank you for reading.")
    else:
        raise ValueError(f"unknown notice kind: {kind!r}")
    return {
        "language": language,
        "subject": subject,
        "preheader": paragraphs[0],
        "date_line": "",
        **chrome_context(settings, tokens, _),
        "email": tokens["email"],
        "show_email": show_email,
        "paragraphs": paragraphs,
        "action": action,
        "action_hint": _("If the button does not work, copy this link into your browser:"),
        "secondary": secondary,
        "footer": footer,
    }
