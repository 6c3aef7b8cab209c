"""The numbers behind /admin/stats: totals, questions per day, top entries, feedback rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from server.store.base import StoreBase
from server.store.models import DemoRun, Feedback, Question, ReviewItem, utcnow


class Statistics(StoreBase):
    """Counts over the question log, feedback, demo runs and the review queue."""

    def summary(self) -> dict[str, Any]:
        """Totals for the stats page: questions, share answered, demo failures, queue size."""
        with self.reading() as s:
            asked = s.scalar(select(func.count()).select_from(Question)) or 0
            answered = s.scalar(select(func.count()).select_from(Question)
                                .where(Question.answered.is_(True))) or 0
            runs = s.scalar(select(func.count()).select_from(DemoRun)) or 0
            failed = s.scalar(select(func.count()).select_from(DemoRun)
                              .where(DemoRun.status != "ok")) or 0
            open_items = s.scalar(select(func.count()).select_from(ReviewItem)
                                  .where(ReviewItem.status == "open")) or 0
        return {
            "questions": asked,
            "answered": answered,
            "answered_share": answered / asked if asked else None,
            "demo_runs": runs,
            "demo_failures": failed,
            "demo_failure_rate": failed / runs if runs else None,
            "open_review_items": open_items,
        }

    def questions_per_day(self, days: int = 30,
                          now: datetime | None = None) -> list[dict[str, Any]]:
        """[{"day": "YYYY-MM-DD", "asked": n, "answered": n}] for each of the last `days` days."""
        now = now or utcnow()
        start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
        with self.reading() as s:
            rows = s.execute(select(Question.asked_at, Question.answered)
                             .where(Question.asked_at >= start)).all()
        counts: dict[str, list[int]] = {}
        for i in range(days):
            counts[(start + timedelta(days=i)).date().isoformat()] = [0, 0]
        for asked_at, answered in rows:
            day = asked_at.astimezone(UTC).date().isoformat()
            if day in counts:
                counts[day][0] += 1
                counts[day][1] += int(bool(answered))
        return [{"day": d, "asked": a, "answered": b} for d, (a, b) in counts.items()]

    def top_entries(self, limit: int = 10) -> list[dict[str, Any]]:
        """Entries answered most often: [{"entry_id", "count"}]."""
        with self.reading() as s:
            n = func.count().label("n")
            rows = s.execute(select(Question.entry_id, n)
                             .where(Question.answered.is_(True), Question.entry_id.is_not(None))
                             .group_by(Question.entry_id).order_by(n.desc(), Question.entry_id)
                             .limit(limit)).all()
        return [{"entry_id": e, "count": c} for e, c in rows]

    def feedback_by_entry(self) -> list[dict[str, Any]]:
        """Per entry: feedback count, "not helpful" count and rate, worst first."""
        with self.reading() as s:
            rows = s.execute(select(Feedback.entry_id, Feedback.helpful, func.count())
                             .group_by(Feedback.entry_id, Feedback.helpful)).all()
        per: dict[str, list[int]] = {}
        for entry_id, helpful, count in rows:
            per.setdefault(entry_id, [0, 0])
            per[entry_id][0] += count
            if not helpful:
                per[entry_id][1] += count
        out = [{"entry_id": e, "feedback": t, "not_helpful": n, "not_helpful_rate": n / t}
               for e, (t, n) in per.items()]
        return sorted(out, key=lambda r: (-r["not_helpful_rate"], -r["feedback"], r["entry_id"]))

    def tinkering_by_demo(self, failures: int = 3) -> list[dict[str, Any]]:
        """Per entry with runs: runs as written, with other parameter values and edited,
        how many edited runs failed, and their most common failures (up to `failures`,
        [{"failure", "count"}]); most tinkered first."""
        with self.reading() as s:
            rows = s.execute(select(DemoRun.entry_id, DemoRun.kind, func.count())
                             .group_by(DemoRun.entry_id, DemoRun.kind)).all()
            broken = s.execute(select(DemoRun.entry_id, DemoRun.failure, func.count())
                               .where(DemoRun.kind == "edit", DemoRun.status != "ok")
                               .group_by(DemoRun.entry_id, DemoRun.failure)).all()
        per: dict[str, dict[str, Any]] = {}
        for entry_id, kind, count in rows:
            row = per.setdefault(entry_id, {"entry_id": entry_id, "demo": 0, "params": 0,
                                            "edit": 0, "edit_failed": 0, "failures": []})
            row[kind if kind in ("demo", "params", "edit") else "demo"] += count
        for entry_id, failure, count in broken:
            row = per[entry_id]
            row["edit_failed"] += count
            row["failures"].append({"failure": failure or "failed", "count": count})
        for row in per.values():
            row["failures"] = sorted(row["failures"],
                                     key=lambda f: (-f["count"], f["failure"]))[:failures]
        return sorted(per.values(), key=lambda r: (-(r["params"] + r["edit"]), -r["demo"],
                                                   r["entry_id"]))
