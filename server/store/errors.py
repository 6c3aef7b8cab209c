"""The store's errors: a request it cannot carry out, with a message for people."""

from __future__ import annotations


class StoreError(Exception):
    """A request the store cannot carry out, with a message for people."""


class QuestionNotStored(StoreError):
    """A question the chat must not answer: the database did not take it."""


class UnknownUser(StoreError):
    """No user has this name."""


class ReviewItemNotFound(StoreError):
    """No review item has this id."""

    def __init__(self, review_id: str):
        self.review_id = review_id
        super().__init__(f"No review item with id {review_id!r}.")
