"""What the panel accepts: sizes, depths and characters of request input."""
import json
import re

from panel.errors import ValidationError

ARGS_DEPTH_MAX = 20             # levels of arrays and objects in a task's args or kwargs (the list itself is one)
ARGS_BYTES_MAX = 64 * 1024      # a task's args or kwargs as JSON, in UTF-8 bytes
BODY_DEPTH_MAX = ARGS_DEPTH_MAX + 1  # the body's own object, then a field
POOL_STEP_MAX = 8               # pool processes one grow or shrink call adds or removes
NAME_MAX = 200                  # characters of a name (schedule, task type, queue) or a text filter
# Characters no name or filter may hold: C0 and C1 controls, DEL, line and paragraph separators, bidi embeddings,
# overrides and isolates (they reorder what a person reads). As a regex class body, for pydantic and the document.
UNSAFE_CLASS = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
UNSAFE = re.compile(f"[{UNSAFE_CLASS}\ud800-\udfff]")  # and unpaired surrogates, which no UTF-8 can carry
SAFE_TEXT = rf"^[^{UNSAFE_CLASS}]*$"
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


def check_payload(value):
    """A task's args or kwargs: finite JSON, valid Unicode, within the depth and size limits; ValueError says which."""
    if _depth(value) > ARGS_DEPTH_MAX:
        raise ValueError(f"is nested deeper than the limit of {ARGS_DEPTH_MAX} levels")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except ValueError:
        raise ValueError("must hold finite numbers only (NaN and Infinity are not JSON)") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"must be valid Unicode text (an unpaired surrogate U+{ord(exc.object[exc.start]):04X})") \
            from None
    if size > ARGS_BYTES_MAX:
        raise ValueError(f"is {size} bytes as JSON, over the limit of {ARGS_BYTES_MAX} bytes")
    return value


def _depth(value):
    """Levels of arrays and objects, counted without recursion (the value may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if level > ARGS_DEPTH_MAX:
                return level
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
