"""The kinds of model every contract is made of: request bodies, query arguments, answers, errors."""
import functools
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from panel.errors import ValidationError
from panel.web import limits


class Body(BaseModel):
    """A JSON request body: types as JSON has them (no "1" for 1), unknown fields refused by name."""

    model_config = ConfigDict(strict=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_null_the_document_forbids(cls, data):
        """A field the document does not declare nullable refuses an explicit null (leaving it out is fine)."""
        if isinstance(data, dict):
            for name in _not_nullable(cls):
                if name in data and data[name] is None:
                    raise ValidationError(name, "cannot be null: leave it out instead")
        return data


def worded(pattern, says, **field):
    """Text that must match `pattern` (so the document says so), refused in words a person reads: `says`."""
    compiled = re.compile(pattern)

    def check(value):
        if isinstance(value, str) and not compiled.search(value):
            raise ValueError(says)
        return value
    return Annotated[str, Field(pattern=pattern, **field), BeforeValidator(check)]


def text(max_length=limits.NAME_MAX, word=None, **field):
    """Text a person reads: no control, bidi or surrogate characters; with `word` (what to say when it has none),
    at least one that is not a space. The document's pattern says the same."""
    unsafe = limits.UNSAFE_CLASS
    pattern = rf"^[^{unsafe}]*[^\s{unsafe}][^{unsafe}]*$" if word else limits.SAFE_TEXT

    def check(value):
        limits.check_text(value)
        if word and isinstance(value, str) and not value.strip():
            raise ValueError(word)
        return value
    return Annotated[str, Field(pattern=pattern, max_length=max_length, **field), BeforeValidator(check)]


def _ascii_digits(value):
    """A number in a URL is ASCII digits only: int() would read "٣" as 3, pydantic " 3" and "1_0" too."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in the digits 0-9")
    return value


def digits(**field):
    """A whole number in the URL's query, with its bounds."""
    return Annotated[int, Field(**field), BeforeValidator(_ascii_digits)]


Args = Annotated[list[Any], AfterValidator(limits.check_payload), Field(
    description=f"JSON, at most {limits.ARGS_DEPTH_MAX} levels deep and {limits.ARGS_BYTES_MAX} bytes")]
Kwargs = Annotated[dict[str, Any], AfterValidator(limits.check_payload), Field(
    description=f"JSON, at most {limits.ARGS_DEPTH_MAX} levels deep and {limits.ARGS_BYTES_MAX} bytes")]


@functools.cache
def _not_nullable(model):
    """The fields whose schema in the document allows no null."""
    properties = model.model_json_schema()["properties"]
    return frozenset(name for name, schema in properties.items()
                     if schema.get("type") != "null" and {"type": "null"} not in schema.get("anyOf", []))


def _integral(value):
    """JSON has one number type: 30.0 is the whole number 30 (as JSON Schema says); 1.5 and true stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole(**field):
    """A whole number with its bounds (`ge`, `le`...), as JSON sends it; bounds first, so the document has them."""
    return Annotated[int, Field(**field), BeforeValidator(_integral)]


class Query(BaseModel):
    """Query arguments: text in the URL, read as the declared types."""

    model_config = ConfigDict(extra="ignore")


class Answer(BaseModel):
    """A JSON answer: every field it carries is declared here."""

    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    """Every API error: what went wrong, and the request field at fault when there is one."""

    model_config = ConfigDict(extra="allow")
    status: Literal["error"]
    message: str
    field: str | None = None


class LegacyStatusError(BaseModel):
    """The error of the legacy status routes (/celery_status, /restart_celery_beat): every error's shape, plus the
    `success: false` their first clients read."""

    model_config = ConfigDict(extra="allow")
    status: Literal["error"]
    success: Literal[False]
    message: str
