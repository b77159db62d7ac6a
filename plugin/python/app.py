"""People from a JSON document at an HTTP(S) address: an hrsync connector
in Python, built with componentize-py against the `hr-connector-http`
world of wit/0.3.0. The connector authors' guide (wit/README.md) walks
through this file; CI builds it, checks it and imports with it."""

import json
from datetime import date
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import host, outgoing_handler, streams
from wit_world.imports import wasi_http_types as http
from wit_world.imports.hrsync_connector_types import (
    Capabilities, CheckReport, ConnectorError_BadResponse, ConnectorError_CredentialsRejected,
    ConnectorError_InvalidSettings, ConnectorError_TemporarilyUnavailable, ConnectorError_Unreachable,
    ConnectorInfo, Date, Entry, Issue, Mapped, Page, Person, PersonStatus, RawRecord, Retry, Severity,
    SettingKind, SettingSpec, SourceAttribute,
)

STATUSES = {"active": PersonStatus.ACTIVE, "onboarding": PersonStatus.ONBOARDING,
            "leave": PersonStatus.LEAVE, "inactive": PersonStatus.INACTIVE}
# Who a first import creates: everyone still employed.
CREATE = [PersonStatus.ACTIVE, PersonStatus.ONBOARDING, PersonStatus.LEAVE]


def setting(settings, key):
    return next((e.value for e in settings if e.key == key), "").strip()


def get(url, token):
    """GET over wasi:http: the status and the whole body. The host's egress
    point alone decides whether the origin may be reached."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Err(ConnectorError_InvalidSettings(f"url `{url}` is not an http(s) address"))
    headers = [("accept", b"application/json")]
    if token:
        headers.append(("authorization", f"Bearer {token}".encode()))
    request = http.OutgoingRequest(http.Fields.from_list(headers))
    request.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:  # refused before it left, e.g. an origin not granted
        raise Err(ConnectorError_Unreachable(f"GET {url} was refused: {e.value}"))
    with future:
        with future.subscribe() as ready:
            ready.block()
        result = future.get()  # Ok(Ok(response)) | Ok(Err(error-code))
    if not isinstance(result.value, Ok):
        raise Err(ConnectorError_Unreachable(f"GET {url} failed: {result.value.value}"))
    # Resources are dropped children first: stream, body, response.
    with result.value.value as response, response.consume() as body, body.stream() as stream:
        chunks = []
        while True:
            try:
                chunks.append(stream.blocking_read(64 * 1024))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise Err(ConnectorError_Unreachable(f"GET {url}: the body broke off"))
        return response.status(), b"".join(chunks)


def people_of(settings):
    """The document's people: a list, or {"people": [...]}."""
    url, token = setting(settings, "url"), setting(settings, "token")
    if not url:
        raise Err(ConnectorError_InvalidSettings("url is required: the address of the people JSON"))
    status, body = get(url, token)
    if status in (401, 403):
        raise Err(ConnectorError_CredentialsRejected(f"{url} answered {status}: check the token"))
    if status in (429, 502, 503, 504):
        raise Err(ConnectorError_TemporarilyUnavailable(Retry(5, f"{url} answered {status}")))
    if status != 200:
        raise Err(ConnectorError_BadResponse(f"{url} answered {status}"))
    try:
        document = json.loads(body)
    except ValueError as e:
        raise Err(ConnectorError_BadResponse(f"{url} is not JSON: {e}"))
    people = document.get("people") if isinstance(document, dict) else document
    if not isinstance(people, list):
        raise Err(ConnectorError_BadResponse('expected a list of people, or {"people": [...]}'))
    return people


def text(value):
    """A trimmed string, or None for nothing or blanks."""
    return (str(value).strip() or None) if value is not None else None


def day(value):
    """A YYYY-MM-DD text as a date; raises ValueError for anything else."""
    if not value:
        return None
    d = date.fromisoformat(str(value))
    return Date(d.year, d.month, d.day)


def issue(record, field, message):
    return Issue(record.source_id, None, field, Severity.ERROR, message)


def person_of(record):
    """One record to a person; raises ValueError naming the field."""
    p = json.loads(record.payload)
    status = STATUSES.get(str(p.get("status", "active")).lower())
    if status is None:
        raise ValueError("status", f"unknown status `{p.get('status')}` (active, onboarding, leave, inactive)")
    dates = {}
    for field in ("start_date", "termination_date"):
        try:
            dates[field] = day(p.get(field))
        except ValueError:
            raise ValueError(field.replace("_", "-"), f"`{p.get(field)}` is not a YYYY-MM-DD date")
    return Person(
        source_id=record.source_id, employee_id=text(p.get("employee_id")),
        first_name=text(p.get("first_name")) or "", last_name=text(p.get("last_name")) or "",
        preferred_name=None, email=text(p.get("email")), gender=None, status=status,
        supervisor_id=text(p.get("manager_id")), start_date=dates["start_date"],
        termination_date=dates["termination_date"], job_title=text(p.get("title")),
        department=text(p.get("department")), office=None, team=None, custom=[], profile_url=None)


class HrSource(exports.HrSource):
    def describe(self):
        return ConnectorInfo(
            id="people-json", name="People JSON (Python)", version="1.0.0",
            description="People from a JSON document at an address you grant.",
            settings=[
                SettingSpec("url", "Address", SettingKind.TEXT, True, None, [],
                            "The people JSON, e.g. https://hr.example.com/people.json; grant its origin."),
                SettingSpec("token", "Token", SettingKind.SECRET, False, None, [],
                            "Sent as a bearer token, if the address needs one."),
            ],
            capabilities=Capabilities.SUPERVISORS | Capabilities.TERMINATION_DATES,
            default_hosts=[])

    def check(self, settings):
        people = people_of(settings)
        keys = sorted({k for p in people[:100] if isinstance(p, dict) for k in p})
        return CheckReport(None, [SourceAttribute(k, k) for k in keys], [], [])

    def fetch_page(self, settings, request):
        records = [RawRecord(str(p["id"]), json.dumps(p)) for p in people_of(settings)
                   if isinstance(p, dict) and str(p.get("id", "")).strip()]
        return Page(records, None, len(records))

    def map_fields(self, settings, records):
        people, issues = [], []
        for record in records:
            try:
                people.append(person_of(record))
            except ValueError as e:
                field, message = e.args if len(e.args) == 2 else (None, str(e))
                issues.append(issue(record, field, f"not imported: {message}"))
        return Mapped(people, issues)

    def diff(self, settings, current, incoming, options):
        return host.canonical_diff(current, incoming, options, CREATE)

    def canonical_creates(self, settings):
        # `diff` is the canonical diff: the host may compute it itself.
        return CREATE
