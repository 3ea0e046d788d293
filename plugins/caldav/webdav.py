"""A thin, read-only WebDAV/CalDAV client over httpx: just what syncing a calendar needs.

PROPFIND (discovery, etags, ctag, sync token), REPORT sync-collection
(RFC 6578), REPORT calendar-query with a time range and REPORT
calendar-multiget (RFC 4791). Answers are parsed as XML with
namespaces (servers differ in prefixes; Radicale uses a default namespace
and none at all), never with regexes. Nothing here ever writes.

Errors come out as three kinds: `LoginError` (401: retrying will not help
until the credentials change), `ConnectionError` (the server could not be
reached or broke off: the supervisor retries with back-off) and `DavError`
(the server answered something unexpected).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
TIMEOUT = httpx.Timeout(30.0, read=120.0)
HREF_SAFE = "/@:!$&'()*+,;=~"
NS = {"d": DAV, "c": CALDAV, "cs": CS}

for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


class LoginError(Exception):
    """The server refused the username or password (retrying at once would not help)."""


class DavError(Exception):
    """The server answered a request in a way this client cannot use."""


class SyncTokenExpired(DavError):
    """The sync token is no longer valid (403 with <valid-sync-token/>): read everything."""


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@dataclass(frozen=True, slots=True)
class Response:
    """One <response> of a multistatus: its href (a decoded path), status and found props."""

    href: str
    status: int  # of the response itself, or of the 200 propstat when there is one
    props: dict[str, ET.Element] = field(default_factory=dict)

    def text(self, ns: str, name: str) -> str | None:
        element = self.props.get(q(ns, name))
        return None if element is None else (element.text or "")


@dataclass(frozen=True, slots=True)
class Calendar:
    href: str  # a path, decoded
    name: str  # the display name, or the last part of the path
    can_sync: bool  # the server lists sync-collection among its reports here


@dataclass(frozen=True, slots=True)
class Changes:
    """What a sync-collection report said: items changed or added (href → etag), gone."""

    token: str
    changed: dict[str, str]
    gone: list[str]


def _status(text: str | None) -> int:
    """`HTTP/1.1 404 Not Found` → 404 (0 when unreadable)."""
    parts = (text or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _path(href: str, base: str) -> str:
    """An href as a decoded absolute path (servers send both full URLs and paths)."""
    return unquote(urlsplit(urljoin(base, href.strip())).path)


def parse_multistatus(body: bytes, base: str) -> tuple[list[Response], ET.Element]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise DavError(f"the server sent XML that cannot be read: {exc}") from None
    if root.tag != q(DAV, "multistatus"):
        raise DavError(f"expected a multistatus answer, got <{root.tag}>")
    responses = []
    for response in root.findall("d:response", NS):
        href = response.findtext("d:href", default="", namespaces=NS)
        props: dict[str, ET.Element] = {}
        status = _status(response.findtext("d:status", namespaces=NS))
        for propstat in response.findall("d:propstat", NS):
            code = _status(propstat.findtext("d:status", namespaces=NS))
            if code == 200:
                status = 200
                prop = propstat.find("d:prop", NS)
                for element in prop if prop is not None else ():
                    props[element.tag] = element
            elif not status:
                status = code
        responses.append(Response(_path(href, base), status, props))
    return responses, root


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _propfind_body(props: Iterable[tuple[str, str]]) -> bytes:
    root = ET.Element(q(DAV, "propfind"))
    prop = ET.SubElement(root, q(DAV, "prop"))
    for ns, name in props:
        ET.SubElement(prop, q(ns, name))
    return _xml(root)


class Client:
    """An httpx AsyncClient bound to one server and account; use `async with`."""

    def __init__(self, url: str, username: str, password: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with https:// (or http://), not {url!r}")
        self.base = url if url.endswith("/") else url + "/"
        self.server = urlsplit(self.base).netloc
        auth = httpx.BasicAuth(username, password) if username else None
        self.http = httpx.AsyncClient(auth=auth, timeout=TIMEOUT, follow_redirects=True)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def url(self, path: str) -> str:
        return urljoin(self.base, path)

    async def request(
        self, method: str, path: str, body: bytes, depth: str, *, allowed: Sequence[int] = (207,)
    ) -> httpx.Response:
        try:
            response = await self.http.request(
                method,
                self.url(path),
                content=body,
                headers={"Depth": depth, "Content-Type": "application/xml; charset=utf-8"},
            )
        except httpx.TransportError as exc:
            raise ConnectionError(f"{self.server}: cannot reach the server: {exc!r}") from exc
        if response.status_code == 401:
            raise LoginError(
                f"{self.server} refused the username or password (401): check username,"
                " password or password_command (an app password, where the provider has them)"
            )
        if response.status_code == 403 and b"valid-sync-token" in response.content:
            _require_sync_token_error(response.content)
        if response.status_code not in allowed:
            raise DavError(
                f"{method} {path} on {self.server}: HTTP {response.status_code}"
                f" {response.reason_phrase}"
            )
        return response

    async def propfind(
        self, path: str, props: Iterable[tuple[str, str]], depth: str = "0"
    ) -> list[Response]:
        response = await self.request("PROPFIND", path, _propfind_body(props), depth)
        return parse_multistatus(response.content, str(response.url))[0]

    # -- discovery ---------------------------------------------------------------------

    async def _href_prop(self, path: str, ns: str, name: str) -> str | None:
        for r in await self.propfind(path, [(ns, name)]):
            element = r.props.get(q(ns, name))
            if element is not None:
                href = element.findtext("d:href", namespaces=NS)
                if href:
                    return _path(href, self.url(path))
        return None

    async def principal(self) -> str:
        """The current user's principal: asked of /.well-known/caldav, then of the URL."""
        base = urlsplit(self.base).path
        for path in ("/.well-known/caldav", base):
            try:
                found = await self._href_prop(path, DAV, "current-user-principal")
            except DavError:
                continue
            if found:
                return found
        raise DavError(
            f"{self.base} does not say who the current user is (no current-user-principal):"
            " is it a CalDAV server? Try the full URL of the CalDAV endpoint"
        )

    async def calendar_home(self) -> str:
        principal = await self.principal()
        home = await self._href_prop(principal, CALDAV, "calendar-home-set")
        if not home:
            raise DavError(f"{self.server}: the principal {principal} has no calendar-home-set")
        return home

    async def calendars(self, home: str) -> list[Calendar]:
        """The event calendars in the user's calendar home (from `calendar_home()`).

        Only properties a server knows without looking at the items are asked
        (no ctag, no sync token: on some servers those cost a pass over every
        item), so listing the calendars stays cheap however large they are.
        """
        props = [
            (DAV, "resourcetype"),
            (DAV, "displayname"),
            (DAV, "supported-report-set"),
            (CALDAV, "supported-calendar-component-set"),
        ]
        found = []
        for r in await self.propfind(home, props, depth="1"):
            kind = r.props.get(q(DAV, "resourcetype"))
            if kind is None or kind.find("c:calendar", NS) is None:
                continue
            components = r.props.get(q(CALDAV, "supported-calendar-component-set"))
            if components is not None and not any(
                c.get("name", "").upper() == "VEVENT" for c in components.findall("c:comp", NS)
            ):
                continue  # a task list
            reports = r.props.get(q(DAV, "supported-report-set"))
            name = (r.text(DAV, "displayname") or "").strip()
            found.append(
                Calendar(
                    href=r.href,
                    name=name or r.href.rstrip("/").rsplit("/", 1)[-1],
                    can_sync=reports is not None
                    and reports.find(".//d:sync-collection", NS) is not None,
                )
            )
        return found

    async def marker(self, cal: Calendar) -> str:
        """What changes when the calendar does: its sync token, else its ctag ("" if none)."""
        prop = (DAV, "sync-token") if cal.can_sync else (CS, "getctag")
        found = [r.text(*prop) for r in await self.propfind(cal.href, [prop])]
        return next((text for text in found if text), "")

    # -- reading -------------------------------------------------------------------------

    async def etags(self, href: str) -> dict[str, str]:
        """Every item of a collection with its etag (PROPFIND depth 1)."""
        responses = await self.propfind(href, [(DAV, "getetag"), (DAV, "resourcetype")], "1")
        return {
            r.href: r.text(DAV, "getetag") or ""
            for r in responses
            if r.status == 200 and r.href.rstrip("/") != href.rstrip("/") and not _is_collection(r)
        }

    async def sync(self, href: str, token: str) -> Changes:
        """REPORT sync-collection: what changed since `token`."""
        root = ET.Element(q(DAV, "sync-collection"))
        ET.SubElement(root, q(DAV, "sync-token")).text = token or None
        ET.SubElement(root, q(DAV, "sync-level")).text = "1"
        ET.SubElement(ET.SubElement(root, q(DAV, "prop")), q(DAV, "getetag"))
        response = await self.request("REPORT", href, _xml(root), "1")
        responses, tree = parse_multistatus(response.content, str(response.url))
        new_token = tree.findtext("d:sync-token", default="", namespaces=NS)
        changed: dict[str, str] = {}
        gone: list[str] = []
        for r in responses:
            if r.href.rstrip("/") == href.rstrip("/"):
                continue
            if r.status == 404:
                gone.append(r.href)
            elif r.status == 200 and not _is_collection(r):
                changed[r.href] = r.text(DAV, "getetag") or ""
        return Changes(new_token, changed, gone)

    async def since(self, href: str, start: datetime) -> dict[str, str]:
        """The events (href → etag) with an occurrence at `start` or later, however far
        ahead: REPORT calendar-query with an open-ended time range."""
        root = ET.Element(q(CALDAV, "calendar-query"))
        ET.SubElement(ET.SubElement(root, q(DAV, "prop")), q(DAV, "getetag"))
        query = ET.SubElement(root, q(CALDAV, "filter"))
        for component in ("VCALENDAR", "VEVENT"):
            query = ET.SubElement(query, q(CALDAV, "comp-filter"), name=component)
        at = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        ET.SubElement(query, q(CALDAV, "time-range"), start=at)
        response = await self.request("REPORT", href, _xml(root), "1")
        responses, _ = parse_multistatus(response.content, str(response.url))
        return {
            r.href: r.text(DAV, "getetag") or ""
            for r in responses
            if r.status == 200 and r.href.rstrip("/") != href.rstrip("/")
        }

    async def multiget(
        self, href: str, items: Sequence[str]
    ) -> tuple[dict[str, tuple[str, str]], list[str]]:
        """The calendar data of `items`: href → (etag, text), and the hrefs not found."""
        root = ET.Element(q(CALDAV, "calendar-multiget"))
        prop = ET.SubElement(root, q(DAV, "prop"))
        ET.SubElement(prop, q(DAV, "getetag"))
        ET.SubElement(prop, q(CALDAV, "calendar-data"))
        for item in items:
            ET.SubElement(root, q(DAV, "href")).text = quote(item, safe=HREF_SAFE)
        response = await self.request("REPORT", href, _xml(root), "1")
        responses, _ = parse_multistatus(response.content, str(response.url))
        found: dict[str, tuple[str, str]] = {}
        missing: list[str] = []
        for r in responses:
            data = r.text(CALDAV, "calendar-data")
            if r.status == 200 and data is not None:
                found[r.href] = (r.text(DAV, "getetag") or "", data)
            else:
                missing.append(r.href)
        return found, missing


def _is_collection(r: Response) -> bool:
    kind = r.props.get(q(DAV, "resourcetype"))
    return kind is not None and kind.find("d:collection", NS) is not None


def _require_sync_token_error(body: bytes) -> None:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return
    if root.find(".//d:valid-sync-token", NS) is not None or root.tag == q(DAV, "valid-sync-token"):
        raise SyncTokenExpired("the sync token is no longer valid")
