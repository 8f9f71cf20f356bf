"""Pydantic's validation errors said the panel's way: the field at fault and a sentence a person reads."""
from panel.errors import ValidationError

# pydantic error type -> our words; {x} are filled from the error's context.
WORDS = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
    "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number", "float_type": "must be a number", "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be text", "list_type": "must be a JSON array", "dict_type": "must be a JSON object",
    "string_unicode": "must be valid Unicode text (no unpaired surrogate)",
    "greater_than_equal": "must be at least {ge}", "greater_than": "must be above {gt}",
    "less_than_equal": "must be at most {le}", "less_than": "must be below {lt}",
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} character(s)",
    "too_short": "must have at least {min_length} item(s)", "too_long": "must have at most {max_length} item(s)",
    "literal_error": "must be one of {expected}", "enum": "must be one of {expected}",
    "string_pattern_mismatch": "has the wrong form",
}


def _field(loc):
    """The request field at fault: the top-level name ("states", not "states.0"); "body" for the whole object."""
    return str(loc[0]) if loc else "body"


def first_error(error):
    """(field, message) of the first problem a pydantic ValidationError reports."""
    problem = error.errors(include_url=False)[0]
    kind, ctx = problem["type"], problem.get("ctx") or {}
    ours = ctx.get("error")
    if isinstance(ours, ValidationError):  # a model's own rule, raised with the field it is about
        return ours.field, ours.message
    if kind in ("value_error", "assertion_error"):  # our own validators: their message is already ours
        text = str(ctx.get("error") or problem["msg"]).removeprefix("Value error, ")
    elif kind in ("too_long", "too_short") and isinstance(problem.get("input"), str):
        text = WORDS["string_" + kind].format(**ctx)
    elif kind in WORDS:
        try:
            text = WORDS[kind].format(**ctx)
        except (KeyError, IndexError):
            text = problem["msg"]
    else:
        text = problem["msg"][0].lower() + problem["msg"][1:]
    return _field(problem["loc"]), text
