"""A user's own account: changing their password."""
from typing import Literal

from pydantic import Field

from panel.security.users import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS
from panel.web.schemas.base import Answer, Body, text


class PasswordChange(Body):
    current_password: text(MAX_PASSWORD_CHARS, min_length=1, description="the password in use now")
    new_password: text(MAX_PASSWORD_CHARS, min_length=MIN_PASSWORD_CHARS, description="the password from now on")
    end_tokens: bool = Field(False, description="also end every API token of yours (false: they keep working)")


class PasswordChanged(Answer):
    status: Literal["success"]
    message: str
    sessions_ended: int = Field(description="open sessions ended (a browser changing it is logged in again)")
    tokens_ended: int = Field(description="API tokens ended with it (end_tokens)")
    tokens_kept: int = Field(description="API tokens that still work")
