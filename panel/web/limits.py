"""What the panel accepts: sizes, depths and characters of request input."""
import io
import json
import re

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from panel.cluster.arguments import (
    ARGS_BYTES_MAX as ARGS_BYTES_MAX,  # re-exported: one limit for send and retry
    ARGS_DEPTH_MAX,
    check_payload as check_payload,
)
from panel.errors import ValidationError

BODY_DEPTH_MAX = ARGS_DEPTH_MAX + 1  # the body's own object, then a field
POOL_STEP_MAX = 8               # pool processes one grow or shrink call adds or removes
NAME_MAX = 200                  # characters of a name (schedule, task type, queue) or a text filter
# Characters no name or filter may hold: C0 and C1 controls, DEL, line and paragraph separators, bidi embeddings,
# overrides and isolates (they reorder what a person reads). As a regex class body, for pydantic and the document.
UNSAFE_CLASS = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
UNSAFE = re.compile(f"[{UNSAFE_CLASS}\ud800-\udfff]")  # and unpaired surrogates, which no UTF-8 can carry
SAFE_TEXT = rf"^[^{UNSAFE_CLASS}]*$"
READ_STEP_BYTES = 64 * 1024     # a body without a length is read in pieces of this size, up to the limit
# One token of JSON text that can change the nesting: a string (maybe a key, with its colon) or a bracket.
TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"\s*(:)?|[\[\]{}]', re.DOTALL)


def unsafe_character(text):
    """Why `text` may not be a name a person reads, or None."""
    found = UNSAFE.search(text)
    if found is None:
        return None
    return (f"must not contain control, bidi or unpaired surrogate characters "
            f"(U+{ord(found.group()):04X} at position {found.start()})")


def check_text(value):
    """A pydantic validator: text without unsafe characters (ValueError says which and where)."""
    if isinstance(value, str) and (problem := unsafe_character(value)):
        raise ValueError(problem)
    return value


def check_body_depth(raw):
    """Refuse a JSON body nested deeper than we accept before parsing it (Python's parser would recurse and die).

    The field named is the top-level key the too-deep part sits under ("body" when the body is not an object).
    """
    depth, key = 0, None
    for token in TOKEN.finditer(raw):
        first = token.group()[:1]
        if first == b'"':
            if depth == 1 and token.group(1):
                key = token.group()
        elif first in b"[{":
            depth += 1
            if depth > BODY_DEPTH_MAX:
                field = _key_name(key) if key else "body"
                raise ValidationError(field, f"is nested deeper than the limit of {ARGS_DEPTH_MAX} levels")
        else:
            depth -= 1


def _key_name(token):
    try:
        return json.loads(token.rstrip(b": \t\r\n"))[:NAME_MAX]
    except ValueError:
        return "body"


class BoundedBody:
    """WSGI middleware: a body sent without a length (chunked) is read here up to MAX_CONTENT_LENGTH and one byte
    more, then handed on with its length, so a body over the limit is refused with 413 like a declared one.

    Werkzeug reads such a stream only up to the limit and stops without looking further: the body was cut at 1 MiB
    and processed (a valid JSON object padded past the limit was sent as a task).
    """

    def __init__(self, wsgi_app, config):
        self.wsgi_app, self.config = wsgi_app, config

    def __call__(self, environ, start_response):
        limit = self.config.get("MAX_CONTENT_LENGTH")
        if limit is not None and not environ.get("CONTENT_LENGTH") and "wsgi.input_terminated" in environ:
            try:
                body = _read_at_most(environ["wsgi.input"], limit + 1)
            except Exception as exc:  # a broken chunk, a client gone (each server its own errors): a 400 below
                body, environ["panel.body_error"] = b"", str(exc) or type(exc).__name__
            environ["wsgi.input"] = io.BytesIO(body[:limit])
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # no longer chunked: Werkzeug would ignore the length
            if body:  # over the limit: the length says one byte more, and Werkzeug answers 413 as for any body
                environ["CONTENT_LENGTH"] = str(len(body))
        return self.wsgi_app(environ, start_response)


def _read_at_most(stream, size):
    """Up to `size` bytes of the stream (a dechunking stream may hand out one chunk a read)."""
    pieces, got = [], 0
    while got < size:
        piece = stream.read(min(READ_STEP_BYTES, size - got))
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def refuse_long_bodies():
    """Before any route: a body over the limit is 413 even where the route would not read it."""
    environ = request.environ
    if environ.get("panel.body_error"):
        raise ValidationError("body", f"could not be read: {environ['panel.body_error']}")
    if not environ.get("CONTENT_LENGTH"):  # no declared length (BoundedBody gives a chunked body its own)
        return
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()


def bound_bodies(app):
    """Every request body of `app` within MAX_CONTENT_LENGTH, however it is framed."""
    app.wsgi_app = BoundedBody(app.wsgi_app, app.config)
    app.before_request(refuse_long_bodies)
