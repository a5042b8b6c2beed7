"""The subscription flow: subscribe, confirm, unsubscribe (RFC 8058 one-click) and preferences."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import IntegrityError

from publisher.content.store import ArticleStore
from publisher.db import transaction
from publisher.delivery import notices
from publisher.delivery.models import MailKind
from publisher.ratelimits import Limit, Limiter, retry_after
from publisher.render.i18n import choose_language, negotiate_language, translations
from publisher.site import Site
from publisher.web.limits import InvalidJson, body_limit, parse_json
from publisher.web.templating import render_page
from subscribers import consent, repository
from subscribers.addresses import Address, normalize
from subscribers.errors import InvalidInput, SubscriberExists, TokenError
from subscribers.models import ACTIVE, FREQUENCIES, PENDING, Subscriber
from subscribers.preferences import LANGUAGES
from subscribers.repository import Consent, Preferences
from subscribers.tokens import Tokens, new_nonce

log = logging.getLogger("publisher.subscription")
router = APIRouter()

CSRF_COOKIE = "publisher_csrf"
HONEYPOT = "website"
#: Subscribe attempts allowed per client IP, and per address, counted in the database.
IP_LIMIT = Limit("subscribe-ip", 10, 600.0)
ADDRESS_LIMIT = Limit("subscribe-address", 3, 3600.0)
MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
#: The notice each outcome of a subscribe request queues.
NOTICE_FOR = {"confirm": MailKind.CONFIRMATION, "already": MailKind.ALREADY_SUBSCRIBED}
#: Every POST here reads at most MAX_FORM_BYTES, counted while the body streams in.
SMALL_BODY = [Depends(body_limit(MAX_FORM_BYTES))]


@dataclass
class SubscriptionState:
    """Per-app state: the token signer, the rate limits, background jobs and the notice sender."""

    site: Site
    tokens: Tokens
    sender: notices.NoticeSender
    limiter: Limiter
    ip_limit: Limit = IP_LIMIT
    address_limit: Limit = ADDRESS_LIMIT
    jobs: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, job: Any) -> None:
        """Run a coroutine after the response, off the request path."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(job)
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)

    async def drain(self) -> None:
        """Wait for every background job, then deliver the notices they queued."""
        while self.jobs:
            await asyncio.gather(*list(self.jobs), return_exceptions=True)
        try:
            await self.sender.deliver_now()
        except Exception:
            log.exception("delivering notices failed; they stay queued")


def state_of(request: Request) -> SubscriptionState:
    """Return (creating on first use) the subscription state of the app."""
    found = getattr(request.app.state, "subscription", None)
    if found is None:
        site: Site = request.app.state.site
        tokens = Tokens(site.settings.web.secret_key, clock=site.clock)
        found = SubscriptionState(
            site, tokens, notice_sender(request.app), Limiter(site.engine, site.clock)
        )
        request.app.state.subscription = found
    assert isinstance(found, SubscriptionState)
    return found


def notice_sender(app: Any) -> notices.NoticeSender:
    """Return (creating on first use) the app's notice sender."""
    found = getattr(app.state, "notices", None)
    if found is None:
        found = app.state.notices = notices.NoticeSender(app.state.site)
    assert isinstance(found, notices.NoticeSender)
    return found


async def drain(app: Any) -> None:
    """Wait until the subscription jobs of ``app`` have finished."""
    found = getattr(app.state, "subscription", None)
    if isinstance(found, SubscriptionState):
        await found.drain()


def page_language(request: Request, *preferred: str) -> str:
    """Pick the page language: ?lang=, the reader's own, Accept-Language (weighted), the site's."""
    site: Site = request.app.state.site
    accepted = negotiate_language(request.headers.get("accept-language", ""), "", domain="web")
    return choose_language(
        request.query_params.get("lang", "")[:20],
        *preferred,
        accepted,
        site.settings.site.language,
        domain="web",
    )


def _gettext(language: str) -> Any:
    return translations(language, "web").gettext


def consent_wording(language: str, site: Site) -> str:
    """Return the consent sentence the form shows (and the record keeps)."""
    text: str = _gettext(language)(
        "I want to receive %(title)s by email. I can unsubscribe at any time "
        "with the link in every email."
    )
    return text % {"title": site.settings.site.title}


def _zones() -> list[str]:
    zones = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))
    indonesia = ["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"]
    return indonesia + [z for z in zones if z not in indonesia]


_ZONES: list[str] = []


def zones() -> list[str]:
    """Return the time zones offered in forms (Indonesia's three first)."""
    if not _ZONES:
        _ZONES.extend(_zones())
    return _ZONES


def _csrf(request: Request) -> tuple[str, str | None]:
    """Return (signed form token, new cookie nonce or None when the cookie is there)."""
    tokens = state_of(request).tokens
    nonce = request.cookies.get(CSRF_COOKIE, "")
    fresh = None
    if not nonce or len(nonce) > 64 or not nonce.isascii():
        nonce = fresh = new_nonce()
    return tokens.csrf(nonce), fresh


def _with_cookie(request: Request, response: Response, fresh: str | None) -> Response:
    if fresh is not None:
        site: Site = request.app.state.site
        response.set_cookie(
            CSRF_COOKIE,
            fresh,
            httponly=True,
            samesite="lax",
            secure=site.settings.site.base_url.startswith("https://"),
            path="/",
        )
    return response


def _check_csrf(request: Request, form: dict[str, str]) -> bool:
    try:
        state_of(request).tokens.check_csrf(
            form.get("csrf", ""), request.cookies.get(CSRF_COOKIE, "")
        )
    except TokenError:
        return False
    return True


async def _form(request: Request) -> dict[str, str] | None:
    """Read a urlencoded or multipart form as single values (topics joined), or None if huge."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        return None
    raw = await request.form(max_files=0, max_fields=200)
    values: dict[str, str] = {}
    for key in raw:
        items = [v for v in raw.getlist(key) if isinstance(v, str)]
        values[key] = ",".join(items) if key == "topics" else (items[-1] if items else "")
    return values


def _page(
    request: Request,
    name: str,
    language: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return render_page(
        request,
        name,
        context,
        status_code=status_code,
        language=language,
        headers={**NO_STORE, **(headers or {})},
    )


def bad_link(request: Request) -> HTMLResponse:
    """Answer a tampered, expired or unknown token: a plain 400 that reveals nothing."""
    return _page(request, "subscription_invalid.html", page_language(request), {}, status_code=400)


def _subscribe_form(
    request: Request,
    language: str,
    *,
    values: dict[str, str] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    site: Site = request.app.state.site
    token, fresh = _csrf(request)
    values = values or {}
    response = _page(
        request,
        "subscribe.html",
        language,
        {
            "csrf": token,
            "honeypot": HONEYPOT,
            "values": values,
            "errors": errors or [],
            "zones": zones(),
            "languages": LANGUAGES,
            "frequencies": FREQUENCIES,
            "consent_text": consent_wording(language, site),
            "chosen_language": values.get("language") or language,
        },
        status_code=status_code,
        headers=headers,
    )
    return _with_cookie(request, response, fresh)


def _parse_subscription(
    values: dict[str, str], language: str
) -> tuple[Address | None, Preferences | None, list[str]]:
    gettext = _gettext(language)
    errors: list[str] = []
    address: Address | None = None
    try:
        address = normalize(values.get("email", "")[:400])
    except InvalidInput:
        errors.append(gettext("Enter a valid email address."))
    preferences: Preferences | None = None
    try:
        preferences = Preferences.parse(
            name=values.get("name", "")[:400],
            language=values.get("language", "") or language,
            timezone=values.get("timezone", "")[:80],
            frequency=values.get("frequency", "")[:20],
            topics=values.get("topics", "").split(",")[:60],
        )
    except InvalidInput:
        errors.append(gettext("Check your name, language, time zone and frequency."))
    return address, preferences, errors


async def _limited(request: Request, address: Address) -> float | None:
    state = state_of(request)
    client = request.client.host if request.client else "unknown"
    wait = await state.limiter.hit(state.ip_limit, client)
    if wait is None:
        wait = await state.limiter.hit(state.address_limit, address.key)
    return wait


def _accept(request: Request, address: Address, preferences: Preferences, text: str) -> None:
    """Queue the database work and email; the caller answers the same way whatever happens."""
    state = state_of(request)
    record = Consent(
        source="web",
        at=state.site.clock.now(),
        ip=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", "")[:1000],
        text=text,
    )
    state.spawn(_subscribe_job(state, address, preferences, record))


async def _subscribe_job(
    state: SubscriptionState, address: Address, preferences: Preferences, record: Consent
) -> None:
    site = state.site
    # Two requests for one new address can race to insert it: the loser finds the
    # winner's row on its second try (pending, just mailed: nothing more to send).
    for attempt in range(2):
        try:
            async with transaction(site.engine) as session:
                outcome = await consent.subscribe(session, address, preferences, record, record.at)
                kind = NOTICE_FOR.get(outcome.action)
                if kind is not None:
                    await notices.queue(session, site, kind, outcome.subscriber.id)
            break
        except (IntegrityError, SubscriberExists):
            if attempt:
                log.warning("subscribe request lost a race twice; the reader can retry")
                return
        except Exception:
            log.exception("subscribe request for subscriber failed")
            return
    state.sender.poke()


@router.get("/subscribe", include_in_schema=False)
async def subscribe_page(request: Request) -> Response:
    """Show the subscribe form."""
    return _subscribe_form(request, page_language(request))


@router.post("/subscribe", include_in_schema=False, dependencies=SMALL_BODY)
async def subscribe_form(request: Request) -> Response:
    """Accept the form; answer identically whether the address is new, pending, active or gone."""
    language = page_language(request)
    values = await _form(request)
    if values is None:
        return _subscribe_form(request, language, status_code=413)
    if values.get("step") == "start" and "csrf" not in values:
        # The short form on every page (or one embedded on another site): show the full
        # form prefilled; it carries the CSRF token, so nothing is subscribed yet.
        language = page_language(request, values.get("page_language", "")[:20])
        prefill = {"email": values.get("email", "")[:320]}
        return _subscribe_form(request, language, values=prefill)
    if not _check_csrf(request, values):
        message = _gettext(language)("This form has expired. Please try again.")
        return _subscribe_form(request, language, values=values, errors=[message], status_code=400)
    language = page_language(request, values.get("page_language", ""))
    address, preferences, errors = _parse_subscription(values, language)
    if errors or address is None or preferences is None:
        return _subscribe_form(request, language, values=values, errors=errors, status_code=400)
    wait = await _limited(request, address)
    if wait is not None:
        message = _gettext(language)("Too many attempts. Please try again later.")
        return _subscribe_form(
            request,
            language,
            values=values,
            errors=[message],
            status_code=429,
            headers={"Retry-After": retry_after(wait)},
        )
    # A bot filled in the hidden field: say the same thing, do nothing.
    if not values.get(HONEYPOT):
        site: Site = request.app.state.site
        _accept(request, address, preferences, consent_wording(language, site))
    return _page(request, "subscribe_done.html", language, {})


@router.post("/api/subscribe", include_in_schema=False, dependencies=SMALL_BODY)
async def subscribe_api(request: Request) -> Response:
    """Accept a JSON subscription (202 whatever the address's state)."""
    language = page_language(request)
    # Requiring JSON is the CSRF defence: a cross-site form cannot send this type.
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"error": "send application/json"}, status_code=415)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return JSONResponse({"error": "request too large"}, status_code=413)
    try:
        data = parse_json(body)
    except InvalidJson as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    if not isinstance(data, dict):
        return JSONResponse({"error": "expected a JSON object"}, status_code=400)
    topics = data.get("topics") or []
    values = {
        key: str(data.get(key) or "")
        for key in ("email", "name", "language", "timezone", "frequency", HONEYPOT)
    }
    values["topics"] = ",".join(str(t) for t in topics) if isinstance(topics, list) else ""
    address, preferences, errors = _parse_subscription(values, language)
    if errors or address is None or preferences is None:
        return JSONResponse({"error": " ".join(errors)}, status_code=422)
    wait = await _limited(request, address)
    if wait is not None:
        return JSONResponse(
            {"error": "too many requests"},
            status_code=429,
            headers={"Retry-After": retry_after(wait)},
        )
    if not values.get(HONEYPOT):
        site: Site = request.app.state.site
        _accept(request, address, preferences, consent_wording(language, site))
    message = _gettext(language)("Check your inbox to confirm your subscription.")
    return JSONResponse({"status": "accepted", "message": message}, status_code=202)


async def _load(
    request: Request, token: str, purpose: Literal["confirm", "unsubscribe", "preferences"]
) -> Subscriber | None:
    tokens = state_of(request).tokens
    try:
        if purpose == "confirm":
            subscriber_id = tokens.load_confirm(token)
        elif purpose == "unsubscribe":
            subscriber_id = tokens.load_unsubscribe(token)
        else:
            subscriber_id = tokens.load_preferences(token)
    except TokenError:
        return None
    site: Site = request.app.state.site
    async with transaction(site.engine) as session:
        return await repository.get(session, subscriber_id)


def _links(request: Request, subscriber: Subscriber) -> dict[str, str]:
    tokens = state_of(request).tokens
    return {
        "preferences_url": f"/preferences/{tokens.preferences(subscriber.id)}",
        "unsubscribe_url": f"/unsubscribe/{tokens.unsubscribe(subscriber.id)}",
    }


@router.get("/confirm/{token}", include_in_schema=False)
async def confirm_page(request: Request, token: str) -> Response:
    """Show a button that confirms (link scanners only GET, so they never confirm)."""
    subscriber = await _load(request, token, "confirm")
    if subscriber is None or subscriber.status not in (PENDING, ACTIVE):
        return bad_link(request)
    language = page_language(request, subscriber.language)
    if subscriber.status == ACTIVE:
        return _page(request, "confirmed.html", language, _links(request, subscriber))
    csrf, fresh = _csrf(request)
    response = _page(request, "confirm.html", language, {"csrf": csrf, "token": token})
    return _with_cookie(request, response, fresh)


@router.post("/confirm/{token}", include_in_schema=False, dependencies=SMALL_BODY)
async def confirm(request: Request, token: str) -> Response:
    """Activate the subscription."""
    subscriber = await _load(request, token, "confirm")
    if subscriber is None:
        return bad_link(request)
    language = page_language(request, subscriber.language)
    values = await _form(request)
    if values is None or not _check_csrf(request, values):
        csrf, fresh = _csrf(request)
        message = _gettext(language)("This form has expired. Please try again.")
        response = _page(
            request,
            "confirm.html",
            language,
            {"csrf": csrf, "token": token, "errors": [message]},
            status_code=400,
        )
        return _with_cookie(request, response, fresh)
    site: Site = request.app.state.site
    async with transaction(site.engine) as session:
        confirmed = await consent.confirm(session, subscriber.id, site.clock.now())
        if confirmed is not None and confirmed.activated:
            # Only the click that activated the reader queues it: one welcome per reader.
            await notices.queue(session, site, MailKind.WELCOME, confirmed.subscriber.id)
    if confirmed is None:
        return bad_link(request)
    if confirmed.activated:
        state_of(request).sender.poke()
    return _page(request, "confirmed.html", language, _links(request, confirmed.subscriber))


@router.get("/unsubscribe/{token}", include_in_schema=False)
async def unsubscribe_page(request: Request, token: str) -> Response:
    """Show a button; never unsubscribe on GET (mail scanners prefetch links)."""
    subscriber = await _load(request, token, "unsubscribe")
    if subscriber is None:
        return bad_link(request)
    language = page_language(request, subscriber.language)
    return _page(request, "unsubscribe.html", language, {"token": token})


@router.post("/unsubscribe/{token}", include_in_schema=False, dependencies=SMALL_BODY)
async def unsubscribe(request: Request, token: str) -> Response:
    """Unsubscribe: the RFC 8058 one-click target (no cookie or CSRF token; 200; idempotent)."""
    subscriber = await _load(request, token, "unsubscribe")
    if subscriber is None:
        return bad_link(request)
    site: Site = request.app.state.site
    async with transaction(site.engine) as session:
        current = await repository.get(session, subscriber.id)
        if current is None:
            return bad_link(request)
        changed = await consent.unsubscribe(session, current, site.clock.now(), detail="web")
        # Someone who asked for no more email gets none: the page is the confirmation,
        # unless the operator turned the notice on (mail.unsubscribe_notice).
        notify = changed and site.settings.mail.unsubscribe_notice
        if notify:
            await notices.queue(session, site, MailKind.UNSUBSCRIBED, subscriber.id)
    if notify:
        state_of(request).sender.poke()
    language = page_language(request, subscriber.language)
    return _page(request, "unsubscribed.html", language, {})


async def _tags(site: Site) -> list[str]:
    async with transaction(site.engine) as session:
        return [tag for tag, _ in await ArticleStore(session, site.settings.site.base_url).tags()]


async def _preferences_page(
    request: Request,
    token: str,
    subscriber: Subscriber,
    *,
    saved: bool = False,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    site: Site = request.app.state.site
    language = page_language(request, subscriber.language)
    csrf, fresh = _csrf(request)
    topics = list(dict.fromkeys([*subscriber.topics, *(await _tags(site))]))
    response = _page(
        request,
        "preferences.html",
        language,
        {
            "csrf": csrf,
            "token": token,
            "subscriber": subscriber,
            "active": subscriber.status in (ACTIVE, PENDING),
            "zones": zones(),
            "languages": LANGUAGES,
            "frequencies": FREQUENCIES,
            "topics": topics,
            "saved": saved,
            "errors": errors or [],
            "unsubscribe_url": _links(request, subscriber)["unsubscribe_url"],
        },
        status_code=status_code,
    )
    return _with_cookie(request, response, fresh)


@router.get("/preferences/{token}", include_in_schema=False)
async def preferences_page(request: Request, token: str) -> Response:
    """Show the reader's language, time zone, frequency and topics."""
    subscriber = await _load(request, token, "preferences")
    if subscriber is None:
        return bad_link(request)
    return await _preferences_page(request, token, subscriber)


@router.post("/preferences/{token}", include_in_schema=False, dependencies=SMALL_BODY)
async def save_preferences(request: Request, token: str) -> Response:
    """Save new preferences (CSRF-protected form)."""
    subscriber = await _load(request, token, "preferences")
    if subscriber is None:
        return bad_link(request)
    language = page_language(request, subscriber.language)
    gettext = _gettext(language)
    values = await _form(request)
    if values is None or not _check_csrf(request, values):
        message = gettext("This form has expired. Please try again.")
        return await _preferences_page(
            request, token, subscriber, errors=[message], status_code=400
        )
    try:
        chosen = Preferences.parse(
            name=values.get("name", "")[:400],
            language=values.get("language", ""),
            timezone=values.get("timezone", "")[:80],
            frequency=values.get("frequency", "")[:20],
            topics=values.get("topics", "").split(",")[:60],
        )
    except InvalidInput:
        message = gettext("Check your name, language, time zone and frequency.")
        return await _preferences_page(
            request, token, subscriber, errors=[message], status_code=400
        )
    site: Site = request.app.state.site
    async with transaction(site.engine) as session:
        current = await repository.get(session, subscriber.id)
        if current is None:
            return bad_link(request)
        await consent.update_preferences(session, current, chosen)
    return await _preferences_page(request, token, current, saved=True)
