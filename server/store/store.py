"""The Store: every read and write of the database, as plain synchronous methods.

One class, put together from one part per aggregate:

- base.StoreBase: the engine, read and write sessions, migrations, closing;
- questions.QuestionLog: questions asked (written behind the chat), feedback, demo runs;
- review_items.ReviewItems: the review queue's items;
- users.Users: staff users and the audit log;
- stats.Statistics: the counts behind /admin/stats.
"""

from __future__ import annotations

from server.store.questions import QuestionLog
from server.store.review_items import ReviewItems
from server.store.stats import Statistics
from server.store.users import Users


class Store(QuestionLog, ReviewItems, Users, Statistics):
    """The askta database: questions, feedback, the review queue, users, the audit log."""
