"""What a student's message must be, the same for a question and for feedback on one."""

from __future__ import annotations

from server.web.errors import PayloadTooLarge, Unprocessable


def check_message(message: str, limit: int) -> None:
    """413 when the message is longer than `limit` characters, 422 when it is blank or not text."""
    if len(message) > limit:
        raise PayloadTooLarge(
            f"The message is {len(message)} characters; the limit is {limit}: shorten it."
        )
    if not message.strip():
        raise Unprocessable("The message is empty: type a question.")
    if not is_text(message):
        raise Unprocessable("The message has a NUL character or a lone surrogate, which are "
                            "not text: remove it.")


def is_text(value: str) -> bool:
    """Whether `value` can be stored and sent back as it is: no NUL (PostgreSQL refuses it in
    text, so one such question would take its whole batch of logged questions with it) and
    no lone surrogate (not encodable as UTF-8)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
