"""What a student's message must be, the same for a question and for feedback on one."""

from __future__ import annotations

from server.web.errors import PayloadTooLarge, Unprocessable


def check_message(message: str, limit: int) -> None:
    """413 when the message is longer than `limit` characters, 422 when it is blank."""
    if len(message) > limit:
        raise PayloadTooLarge(
            f"The message is {len(message)} characters; the limit is {limit}: shorten it."
        )
    if not message.strip():
        raise Unprocessable("The message is empty: type a question.")
