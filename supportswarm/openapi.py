"""The OpenAPI 3.1 document of the JSON API, served at GET /openapi.json.

Written by hand, next to nothing else: the request schemas state the same limits the services enforce
(lengths, counts, ranges, enums — the enums are read from the code), and every operation lists its error
answers with the one error shape. `tests/security/test_fuzz.py` checks the document against the app
(every API route is described, every described route exists) and fuzzes the app with it (schemathesis).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from supportswarm.accounts import services as accounts
from supportswarm.accounts.models import Role
from supportswarm.forum import services as forum
from supportswarm.forum.models import QuestionStatus
from supportswarm.httpkit import MAX_BODY, MAX_ID
from supportswarm.matching import routes as matching_routes
from supportswarm.matching import services as matching
from supportswarm.matching import site_search
from supportswarm.matching.models import SuggestionOutcome
from supportswarm.metrics import services as metrics
from supportswarm.moderation import services as moderation
from supportswarm.moderation.models import FlagReason, FlagStatus
from supportswarm.swarm.models import SwarmStatus
from supportswarm.validation import MAX_TAGS
from supportswarm.webhooks import services as webhooks
from supportswarm.webhooks.models import DeliveryStatus

Schema = dict[str, Any]

# --- schema building blocks -----------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An object with these properties; more may appear (clients ignore what they do not know)."""
    return {"type": "object", "required": list(required), "properties": required | (optional or {})}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **kw: Any) -> Schema:
    return {"type": "array", "items": items, **kw}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TAG: Schema = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9+#.-]{0,31}$"}
SPREAD: Schema = obj({"median_s": nullable(NUM), "p90_s": nullable(NUM), "n": INT})

TITLE: Schema = {"type": "string", "minLength": forum.TITLE_MIN, "maxLength": forum.TITLE_MAX}
BODY: Schema = {"type": "string", "maxLength": forum.BODY_MAX}
ANSWER_BODY: Schema = {"type": "string", "minLength": forum.ANSWER_MIN, "maxLength": forum.BODY_MAX}
TAGS: Schema = {"description": "a list, or one string of tags separated by commas or spaces",
                "anyOf": [array(TAG, maxItems=MAX_TAGS), {"type": "string", "maxLength": 200}]}
EDIT_COMMENT: Schema = {"type": "string", "maxLength": 300, "description": "why it was edited (revision log)"}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": obj({"code": STR, "detail": STR}, {"field": STR})}),
    "User": obj({"id": INT, "username": STR, "role": {"enum": [str(r) for r in Role]}, "reputation": INT}),
    "Auth": obj({"user": ref("User"), "token": STR}),
    "Me": obj({"user": {"allOf": [ref("User"), obj({"email": nullable(STR)})]}}),
    "Token": obj({"id": INT, "name": STR, "created_at": TIME, "last_used_at": nullable(TIME)}),
    "TokenList": obj({"items": array(ref("Token"))}),
    "NewToken": {"allOf": [ref("Token"), obj({"token": {"type": "string", "description": "shown only once"}})]},
    "AdminUser": {"allOf": [ref("User"), obj({"is_active": BOOL, "created_at": TIME, "last_seen_at": nullable(TIME)},
                                             {"email": nullable(STR)})]},
    "UserList": obj({"items": array(ref("AdminUser")), "page": INT, "total": INT, "per_page": INT}),
    "ResetLink": obj({"url": STR, "expires_at": TIME}),
    "Ok": obj({"ok": BOOL}),
    "QuestionSummary": obj({
        "id": INT, "external_id": nullable(STR), "title": STR, "status": {"enum": [str(s) for s in QuestionStatus]},
        "score": INT, "answer_count": INT, "tags": array(STR), "author": nullable(STR),
        "accepted_answer_id": nullable(INT), "duplicate_of_id": nullable(INT), "created_at": TIME,
        "last_activity_at": TIME,
    }),
    "Comment": obj({"id": INT, "body": STR, "author": nullable(STR), "created_at": TIME}, {"hidden": BOOL}),
    "Answer": obj({
        "id": INT, "question_id": INT, "body": STR, "score": INT, "is_accepted": BOOL, "is_wiki": BOOL,
        "from_swarm_id": nullable(INT), "author": nullable(STR), "created_at": TIME,
    }),
    "QuestionDetail": {"allOf": [ref("QuestionSummary"), obj({
        "body": STR, "comments": array(ref("Comment")),
        "answers": array({"allOf": [ref("Answer"), obj({"comments": array(ref("Comment"))}, {"hidden": BOOL})]}),
    }, {"hidden": {"type": "boolean", "description": "hidden by a moderator: non-staff get placeholder text"}})]},
    "QuestionList": obj({"items": array(ref("QuestionSummary")), "page": INT, "total": INT, "per_page": INT}),
    "Route": obj({"type": {"enum": ["suggested_answer", "forum", "swarm"]}}, {
        "suggestion_id": INT, "question_id": INT, "answer_id": INT, "score": NUM, "swarm_id": INT, "ws_url": STR,
        "reason": STR,
    }),
    "Routed": obj({"route": ref("Route")}, {"question": ref("QuestionSummary")}),
    "Similar": obj({
        "decision": {"enum": ["answer", "ask"]},
        "results": array(obj({"id": INT, "external_id": nullable(STR), "title": STR, "score": NUM,
                              "accepted_answer_id": nullable(INT)}, {"answer_excerpt": nullable(STR)})),
    }),
    "SearchResults": obj({"items": array({"allOf": [ref("QuestionSummary"), obj({
        "matched_in": array({"enum": list(site_search.KINDS)}),
        "match": obj({"in": {"enum": list(site_search.KINDS)}, "url": STR}),
        "title_html": {"type": "string", "description": "the title, HTML-escaped, matches in <mark>"},
        "snippet_html": {"type": "string", "description": "where it matched, HTML-escaped, matches in <mark>"},
    })]}), "page": INT, "per_page": INT, "total": INT}),
    "SuggestionDecision": obj({"suggestion_id": INT, "outcome": {"enum": [str(o) for o in SuggestionOutcome]},
                               "question_id": nullable(INT), "answer_id": nullable(INT)}),
    "Score": obj({"score": INT}),
    "Created": obj({"id": INT}),
    "Revisions": obj({"revisions": array(obj({
        "number": INT, "editor": nullable(STR), "at": TIME, "title": nullable(STR), "body": STR,
        "tags": array(STR), "comment": nullable(STR), "diff": array(STR),
    }))}),
    "SwarmRef": obj({"id": INT, "question_id": INT, "status": {"enum": [str(s) for s in SwarmStatus]},
                     "ws_url": STR}),
    "Author": nullable(obj({"id": INT, "username": STR, "role": STR})),
    "Message": obj({"type": {"const": "message"}, "id": INT, "seq": INT, "client_msg_id": STR,
                    "author": ref("Author"), "body": STR, "at": TIME}),
    "SwarmView": obj({
        "swarm": obj({"id": INT, "question_id": INT, "status": {"enum": [str(s) for s in SwarmStatus]},
                      "reason": nullable(STR), "opened_at": TIME, "resolved_at": nullable(TIME), "last_seq": INT,
                      "solution_answer_id": nullable(INT),
                      "question": obj({"id": INT, "title": STR, "status": STR, "asker_id": nullable(INT)}),
                      "linked_question_ids": array(INT)}),
        "members": array(obj({"id": INT, "username": STR})),
        "messages": array(ref("Message")), "next_after": nullable(INT), "solution_seq": nullable(INT),
        "can_join": BOOL,
    }),
    "Inbox": obj({"items": array(obj({"id": INT, "question_id": INT, "title": STR, "tags": array(STR),
                                      "score": NUM, "urgent": BOOL})), "total": INT}),
    "MetricsSummary": obj({
        "since": TIME, "until": TIME, "questions": INT, "asks": INT, "time_to_first_response": SPREAD,
        "time_to_resolution": SPREAD, "resolution_rate": nullable(NUM), "deflection_rate": nullable(NUM),
        "swarms": obj({"opened": INT, "resolved": INT, "incidents": INT}), "knowledge_reuse": INT,
        "backlog": {"type": "object"}, "top_contributors": array({"type": "object"}),
    }),
    "Trends": obj({"bucket": {"enum": list(metrics.BUCKETS)},
                   "points": array(obj({"start": TIME, "questions": INT, "deflected": INT}))}),
    "Clusters": obj({"clusters": array(obj({"id": INT, "status": STR, "size": INT, "headline": STR,
                                            "questions": array(obj({"id": INT, "title": STR}))}))}),
    "Incident": obj({"cluster_id": INT, "swarm_id": INT, "question_ids": array(INT), "swarm_url": STR}),
    "Dismissed": obj({"dismissed": INT}),
    "Webhook": obj({"id": INT, "url": STR, "events": array(STR), "description": STR, "is_active": BOOL,
                    "created_at": TIME}, {"secret": STR}),
    "WebhookList": obj({"items": array({"allOf": [ref("Webhook"), obj({"deliveries": obj(
        {str(s): INT for s in DeliveryStatus})})]})}),
    "WebhookLog": obj({"webhook": ref("Webhook"), "page": INT, "total": INT, "per_page": INT,
                       "deliveries": array(obj({"id": INT, "event": STR, "status": STR, "attempts": INT,
                                                "log": array({"type": "object"})}))}),
    "Redelivery": obj({"id": INT, "status": {"enum": [str(s) for s in DeliveryStatus]}}),
    "Deleted": obj({"deleted": BOOL}),
    "Flagged": obj({"id": INT, "reason": {"enum": [str(r) for r in FlagReason]},
                    "status": {"enum": [str(s) for s in FlagStatus]},
                    "hidden": {"type": "boolean", "description": "the post is hidden now (pending review)"}}),
    "FlagGroup": obj({
        "post": obj({"kind": {"enum": [str(k) for k in moderation.PostKind]}, "id": INT, "question_id": INT,
                     "swarm_id": nullable(INT), "seq": nullable(INT), "title": nullable(STR), "body": STR,
                     "url": STR, "author": nullable(STR), "hidden": BOOL, "hidden_at": nullable(TIME),
                     "auto_hidden": BOOL}),
        "count": INT, "reasons": {"type": "object", "additionalProperties": INT},
        "flags": array(obj({"id": INT, "reason": {"enum": [str(r) for r in FlagReason]}, "detail": STR,
                            "status": {"enum": [str(s) for s in FlagStatus]}, "user": STR, "created_at": TIME})),
    }),
    "FlagQueue": obj({"status": {"enum": [str(s) for s in FlagStatus]}, "items": array(ref("FlagGroup")),
                      "total": INT}),
    "Resolved": {"allOf": [ref("FlagGroup"), obj({"action": {"enum": [str(a) for a in moderation.Action]}})]},
    "Health": obj({"status": {"const": "ok"}}),
    "Ready": obj({"status": {"enum": ["ready", "unavailable"]}, "checks": obj({"database": BOOL, "broker": BOOL})}),
}

# --- operations -------------------------------------------------------------------------------------------

ERROR_TEXT = {
    400: "invalid input; `error.field` names the offending field",
    401: "not logged in (send a bearer token or the session cookie)",
    403: "not allowed, or a cookie request without its CSRF token",
    404: "no such object",
    409: "conflicts with the current state",
    413: f"request body over {MAX_BODY} bytes",
    429: "too many requests; see Retry-After",
    503: "the database or Redis is unreachable; see Retry-After",
}
READ = (400, 404, 429, 503)
WRITE = (400, 401, 403, 404, 409, 413, 429, 503)


def _json(schema: Schema) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def op(summary: str, status: int, reply: str | Schema, *, errors: tuple[int, ...] = WRITE,
       body: Schema | None = None, params: list[Schema] | None = None, tag: str = "forum",
       also: dict[int, str] | None = None) -> dict[str, Any]:
    """One operation: its success answer (`also`: other success statuses with the same shape) and errors."""
    schema = ref(reply) if isinstance(reply, str) else reply
    responses: dict[str, Any] = {str(status): {"description": "OK"} | _json(schema)}
    for other, why in (also or {}).items():
        responses[str(other)] = {"description": why} | _json(schema)
    for code in errors:
        responses[str(code)] = {"description": ERROR_TEXT[code]} | _json(ref("Error"))
    spec: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        spec["requestBody"] = {"required": True} | _json(body)
    if params:
        spec["parameters"] = params
    return spec


def query(name: str, schema: Schema, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema}


PATH_ID = {"name": "id", "in": "path", "required": True, "schema": ID}
PAGE = query("page", {"type": "integer", "minimum": 1, "maximum": 100_000})
METRIC_FILTERS = [
    query("since", {"type": "string", "format": "date-time", "description": "ISO date or time; default 30 days ago"}),
    query("until", {"type": "string", "format": "date-time", "description": "ISO date (inclusive) or time"}),
    query("tag", TAG),
    query("responder", {"enum": list(metrics.RESPONDERS)}),
]
VOTE: Schema = obj({"value": {"enum": [1, -1, 0, "up", "down", "none"]}})


def _with_id(spec: dict[str, Any]) -> dict[str, Any]:
    spec["parameters"] = [PATH_ID, *spec.get("parameters", [])]
    return spec


def _account_paths() -> dict[str, Any]:
    signup = obj({"username": {"type": "string", "pattern": accounts.USERNAME_RE.pattern},
                  "password": {"type": "string", "minLength": accounts.MIN_PASSWORD,
                               "maxLength": accounts.MAX_PASSWORD}},
                 {"email": {"type": "string", "maxLength": 254, "format": "email"}})
    login = obj({"username": {"type": "string", "maxLength": 32},
                 "password": {"type": "string", "maxLength": accounts.MAX_PASSWORD}})
    return {
        "/api/v1/auth/signup": {"post": op("Create an account; sets the session cookie", 201, "Auth", body=signup,
                                           errors=(400, 403, 409, 413, 429, 503), tag="accounts")},
        "/api/v1/auth/login": {"post": op("Log in; sets the session cookie", 200, "Auth", body=login,
                                          errors=(400, 401, 403, 413, 429, 503), tag="accounts")},
        "/api/v1/auth/logout": {"post": op("Clear the session cookie", 200, "Ok", errors=(403, 503), tag="accounts")},
        "/api/v1/me": {
            "get": op("The current user (with their email)", 200, "Me", errors=(401, 403, 503), tag="accounts"),
            "patch": op("Change your email address (null or \"\" removes it)", 200, "Me", tag="accounts",
                        body=obj({"email": nullable({"type": "string", "maxLength": 254})})),
        },
    }


def _me_paths() -> dict[str, Any]:
    password = obj({"current_password": {"type": "string", "maxLength": accounts.MAX_PASSWORD},
                    "new_password": {"type": "string", "minLength": accounts.MIN_PASSWORD,
                                     "maxLength": accounts.MAX_PASSWORD}})
    token = obj({"name": {"type": "string", "minLength": 1, "maxLength": accounts.TOKEN_NAME_MAX}})
    return {
        "/api/v1/me/password": {"post": op(
            "Change your password (the current one is required); signs out your other sessions, tokens stay", 200,
            "Ok", body=password, tag="accounts")},
        "/api/v1/me/tokens": {
            "get": op("Your API tokens (never the tokens themselves)", 200, "TokenList", errors=(401, 403, 429, 503),
                      tag="accounts"),
            "post": op("Create an API token; the reply carries it, once", 201, "NewToken", body=token,
                       tag="accounts"),
        },
        "/api/v1/me/tokens/{id}": {"delete": _with_id(op("Revoke one of your tokens", 200, "Deleted",
                                                         tag="accounts"))},
    }


def _user_admin_paths() -> dict[str, Any]:
    listing = [query("q", {"type": "string", "maxLength": 32, "description": "part of the username"}),
               query("role", {"enum": [str(r) for r in Role]}), PAGE]
    update = {"type": "object", "minProperties": 1, "properties": {"role": {"enum": [str(r) for r in Role]},
                                                                   "is_active": BOOL}}
    return {
        "/api/v1/users": {"get": op("Users by name and role (admins; leads see no email addresses)", 200, "UserList",
                                    params=listing, errors=(400, 401, 403, 429, 503), tag="accounts")},
        "/api/v1/users/{id}": {"patch": _with_id(op(
            "Change a user's role or deactivate / reactivate them (admins; not themselves)", 200, "AdminUser",
            body=update, tag="accounts"))},
        "/api/v1/users/{id}/password-reset": {"post": _with_id(op(
            "A one-time password reset link for the user, valid one hour (admins)", 201, "ResetLink",
            tag="accounts"))},
    }


def _question_paths() -> dict[str, Any]:
    ask = obj({"title": TITLE, "body": BODY}, {"tags": TAGS, "force": {
        "type": "boolean", "description": "post even when an existing answer matches"}})
    edit = obj({"title": TITLE, "body": BODY}, {"tags": TAGS, "comment": EDIT_COMMENT})
    listing = [query("status", {"enum": list(forum.FILTERS)}), query("tag", TAG), PAGE]
    return {
        "/api/v1/questions": {
            "get": op("List questions, most recently active first", 200, "QuestionList", params=listing,
                      errors=READ),
            "post": op("Ask: offers a matching answer, or posts the question (and maybe opens a swarm)", 201,
                       "Routed", body=ask, also={200: "an existing answer is offered: only `route`"}),
        },
        "/api/v1/questions/{id}": {
            "get": _with_id(op("A question with its answers and comments", 200, "QuestionDetail", errors=READ)),
            "patch": _with_id(op("Edit (author or staff); keeps a revision", 200, "QuestionSummary", body=edit)),
        },
        "/api/v1/questions/{id}/answers": {"post": _with_id(op(
            "Answer", 201, "Answer", body=obj({"body": ANSWER_BODY}, {"wiki": BOOL})))},
        "/api/v1/questions/{id}/vote": {"post": _with_id(op("Vote on a question", 200, "Score", body=VOTE))},
        "/api/v1/questions/{id}/comments": {"post": _with_id(op("Comment on a question", 201, "Created", body=obj(
            {"body": {"type": "string", "minLength": 2, "maxLength": forum.COMMENT_MAX}})))},
        "/api/v1/questions/{id}/revisions": {"get": _with_id(op("Revision history with diffs", 200, "Revisions",
                                                                errors=READ))},
        "/api/v1/questions/{id}/duplicate": {"post": _with_id(op(
            "Close as a duplicate of another question (staff)", 200, "QuestionSummary",
            body=obj({"duplicate_of": ID})))},
        "/api/v1/questions/{id}/swarm": {"post": _with_id(op(
            "Open (or get) the question's swarm room (asker or helpers)", 201, "SwarmRef", tag="swarm",
            also={200: "the swarm already existed"}))},
    }


def _answer_paths() -> dict[str, Any]:
    return {
        "/api/v1/answers/{id}": {"patch": _with_id(op(
            "Edit an answer (author, staff, or trusted users on wiki answers)", 200, "Answer",
            body=obj({"body": ANSWER_BODY}, {"comment": EDIT_COMMENT})))},
        "/api/v1/answers/{id}/accept": {"post": _with_id(op("Accept (asker or staff); resolves the question", 200,
                                                             "QuestionSummary"))},
        "/api/v1/answers/{id}/vote": {"post": _with_id(op("Vote on an answer", 200, "Score", body=VOTE))},
        "/api/v1/answers/{id}/comments": {"post": _with_id(op("Comment on an answer", 201, "Created", body=obj(
            {"body": {"type": "string", "minLength": 2, "maxLength": forum.COMMENT_MAX}})))},
        "/api/v1/answers/{id}/revisions": {"get": _with_id(op("Revision history with diffs", 200, "Revisions",
                                                              errors=READ))},
    }


def _matching_paths() -> dict[str, Any]:
    similar = [query("q", {"type": "string", "minLength": 1, "maxLength": matching_routes.Q_MAX}, required=True),
               query("limit", {"type": "integer", "minimum": 1, "maximum": matching.MAX_LIMIT})]
    search = [query("q", {"type": "string", "minLength": 1, "maxLength": site_search.Q_MAX,
                          "description": 'words, "phrases", -exclusions, or; tag:NAME is:STATUS user:NAME'},
                    required=True),
              query("page", {"type": "integer", "minimum": 1, "maximum": site_search.MAX_PAGE}),
              query("status", {"enum": list(site_search.STATUSES)}), query("tag", TAG)]
    return {
        "/api/v1/search": {"get": op("Search questions, answers, comments and swarm transcripts, best first", 200,
                                     "SearchResults", params=search, errors=READ, tag="matching")},
        "/api/v1/similar": {"get": op("Similar solved questions while typing, best first", 200, "Similar",
                                      params=similar, errors=READ, tag="matching")},
        "/api/v1/suggestions/{id}/accept": {"post": _with_id(op(
            "'This solved my problem' (the asker only)", 200, "SuggestionDecision", tag="matching"))},
        "/api/v1/suggestions/{id}/reject": {"post": _with_id(op(
            "'Not my problem': posts the draft as a question (the asker only)", 201, "Routed", tag="matching",
            also={200: "a retried click on a draft that was not posted"}))},
    }


def _swarm_paths() -> dict[str, Any]:
    page = [query("after", {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 500})]
    return {
        "/api/v1/swarms": {"get": op("Open swarms ranked for the viewer (the inbox)", 200, "Inbox", tag="swarm",
                                     params=[query("status", {"enum": ["open"]})], errors=(400, 401, 403, 429, 503))},
        "/api/v1/swarms/{id}": {"get": _with_id(op(
            "A swarm, its members and a page of its transcript (live ones: members only)", 200, "SwarmView",
            params=page, errors=(400, 401, 403, 404, 429, 503), tag="swarm"))},
    }


def _metrics_paths() -> dict[str, Any]:
    lead = (400, 401, 403, 429, 503)
    bucket = query("bucket", {"enum": list(metrics.BUCKETS)})
    csv = {"200": {"description": "one row per question", "content": {"text/csv": {"schema": STR}}}} | {
        str(c): {"description": ERROR_TEXT[c]} | _json(ref("Error")) for c in lead}
    return {
        "/api/v1/metrics/summary": {"get": op("Resolution metrics (leads and admins)", 200, "MetricsSummary",
                                              params=METRIC_FILTERS, errors=lead, tag="metrics")},
        "/api/v1/metrics/trends": {"get": op("Metrics per day or week", 200, "Trends", errors=lead, tag="metrics",
                                             params=[*METRIC_FILTERS, bucket])},
        "/api/v1/metrics/export.csv": {"get": {"summary": "CSV export", "tags": ["metrics"],
                                               "parameters": METRIC_FILTERS, "responses": csv}},
        "/api/v1/metrics/emergent": {"get": op("Emergent problems: clusters of similar new questions", 200,
                                               "Clusters", errors=lead, tag="metrics")},
        "/api/v1/metrics/emergent/{id}/incident": {"post": _with_id(op(
            "Open one incident swarm for a cluster (staff, leads, admins)", 201, "Incident", tag="metrics"))},
        "/api/v1/metrics/emergent/{id}/dismiss": {"post": _with_id(op(
            "Dismiss a cluster (staff, leads, admins)", 200, "Dismissed", tag="metrics"))},
    }


def _webhook_paths() -> dict[str, Any]:
    create = obj({"url": {"type": "string", "format": "uri", "maxLength": webhooks.URL_MAX}}, {
        "events": array({"enum": [str(k) for k in webhooks.EVENT_KINDS]}, uniqueItems=True),
        "description": {"type": "string", "maxLength": webhooks.DESCRIPTION_MAX},
    })
    admin = (400, 401, 403, 404, 429, 503)
    return {
        "/api/v1/webhooks": {
            "get": op("Webhooks with delivery counts (admins)", 200, "WebhookList", errors=admin, tag="webhooks"),
            "post": op("Create a webhook; the reply carries its signing secret (admins)", 201, "Webhook",
                       body=create, tag="webhooks"),
        },
        "/api/v1/webhooks/{id}": {
            "get": _with_id(op("A webhook and its delivery log (admins)", 200, "WebhookLog", params=[PAGE],
                               errors=admin, tag="webhooks")),
            "delete": _with_id(op("Delete a webhook and its log (admins)", 200, "Deleted", tag="webhooks")),
        },
        "/api/v1/webhooks/deliveries/{id}/redeliver": {"post": _with_id(op(
            "Send a delivery again now (admins)", 202, "Redelivery", tag="webhooks"))},
    }


def _moderation_paths() -> dict[str, Any]:
    flag = obj({"reason": {"enum": [str(r) for r in FlagReason]}}, {"detail": {
        "type": "string", "maxLength": moderation.DETAIL_MAX, "description": "required for needs_attention"}})
    staff = (400, 401, 403, 429, 503)
    paths: dict[str, Any] = {
        f"/api/v1/{kind}s/{{id}}/flag": {"post": _with_id(op(
            f"Flag a {kind} (signed-in members, not its author; one open flag each)", 201, "Flagged", body=flag,
            tag="moderation"))}
        for kind in ("question", "answer", "comment")
    }
    in_room = [{"name": name, "in": "path", "required": True, "schema": ID} for name in ("swarm_id", "seq")]
    return paths | {
        "/api/v1/swarms/{swarm_id}/messages/{seq}/flag": {"post": op(
            "Flag a swarm room message (those who may see the room)", 201, "Flagged", body=flag, params=in_room,
            tag="moderation")},
        "/api/v1/flags": {"get": op("Flagged posts with their flags, grouped by post (staff)", 200, "FlagQueue",
                                    params=[query("status", {"enum": [str(s) for s in FlagStatus]})],
                                    errors=staff, tag="moderation")},
        "/api/v1/flags/{id}/resolve": {"post": _with_id(op(
            "Dismiss the post's flags, hide the post or restore it (staff)", 200, "Resolved",
            body=obj({"action": {"enum": [str(a) for a in moderation.Action]}}), tag="moderation"))},
    }


def _ops_paths() -> dict[str, Any]:
    ready = {"200": {"description": "ready"} | _json(ref("Ready")),
             "503": {"description": "the database or the broker does not answer"} | _json(ref("Ready"))}
    return {
        "/healthz": {"get": {"summary": "Alive", "tags": ["ops"], "security": [{}],
                             "responses": {"200": {"description": "alive"} | _json(ref("Health"))}}},
        "/readyz": {"get": {"summary": "Database and broker reachable", "tags": ["ops"], "security": [{}],
                            "responses": ready}},
    }


@cache
def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    # The caller's own password and tokens come last: clients and fuzzers that walk the document in order
    # (tests/security/test_fuzz.py) may revoke the very token they call with.
    for part in (_account_paths, _user_admin_paths, _question_paths, _answer_paths, _matching_paths, _swarm_paths,
                 _metrics_paths, _webhook_paths, _moderation_paths, _ops_paths, _me_paths):
        paths |= part()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SupportSwarm API", "version": "1",
            "description": "Errors are always `{\"error\": {\"code\", \"detail\", \"field\"?}}`; clients branch on "
                           "`code`. Scripts authenticate with `Authorization: Bearer <token>`; browsers with the "
                           "session cookie plus the `X-CSRF-Token` header on unsafe methods. The room protocol "
                           "(`/ws/swarms/{id}`) is described in the README, section \"Swarm protocol\".",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"cookie": []}, {}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a token from signup, login or "
                                                                               "`supportswarm token`"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "ss_session"},
            },
        },
        "paths": paths,
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document())


routes = [Route("/openapi.json", openapi_json, methods=["GET"], name="openapi")]
