"""The knowledge base's history: kb/ is a git working copy, and every staff change is one
commit by that staff member (see recorder.py for how, repo.py for the git side)."""

from server.history.recorder import Change, History, KbHistory
from server.history.repo import CommitInfo, DiffLine, HistoryError, KbRepo

__all__ = ["Change", "CommitInfo", "DiffLine", "History", "HistoryError", "KbHistory", "KbRepo"]
