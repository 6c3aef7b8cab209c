"""The review loop: the queue of unanswered questions, authoring entries, importing Q&A pages."""
