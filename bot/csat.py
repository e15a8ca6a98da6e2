"""The customer's rating of a closed chat, typed or tapped, and what they add to it.

When an agent closes a chat the handoff service asks for a rating and sets the ``csat``
slot to ``{"asked": time}``. The rating is then taken from a button, or from a message
that is just a rating ("4", "4/5", "5 stars", "⭐⭐⭐⭐"), with any words after it ("4 - quick
and kind") kept as the customer's comment. After the rating the bot invites a comment: the
customer's next message, unless it is a question the bot can answer or a request for a
person, is that comment. The slot then holds ``{"asked", "score", "rated", "comment"}``;
the team lead's figures read the rating and the comment from it (``handoff/kpis.py``).
"""

from __future__ import annotations

import re
from typing import Any

CSAT_SLOT = "csat"
RATING_WINDOW_S = 24 * 3600  # a rating typed this long after the question still counts
COMMENT_WINDOW_S = 15 * 60  # a comment is the next message within this time of the rating
MAX_COMMENT = 500

_RATING = re.compile(
    r"""^\s*(?P<score>[1-5])\s*
        (?:(?:/|of|out\s+of|из|no|sa|od)\s*5\s*)?
        (?:stars?|звезд\w*|ვარსკვლავ\w*|zvezd\w*|zvaigzn\w*|bituin)?\s*
        (?:[-–—:,.!;)]+\s*(?P<comment>.*?))?\s*$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
_STARS = re.compile(r"^\s*((?:⭐|★)\s*){1,5}\s*$")


def rating_in(text: str) -> tuple[int, str | None] | None:
    """``(score, comment)`` when ``text`` is a rating from 1 to 5, else ``None``."""
    text = text or ""
    stars = _STARS.match(text)
    if stars:
        return text.count("⭐") + text.count("★"), None
    found = _RATING.match(text)
    if not found:
        return None
    comment = (found.group("comment") or "").strip() or None
    return int(found.group("score")), comment[:MAX_COMMENT] if comment else None


def state(value: Any, now: float) -> str | None:
    """What the ``csat`` slot waits for now: ``"rating"``, ``"comment"`` or nothing."""
    if not isinstance(value, dict) or not isinstance(value.get("asked"), (int, float)):
        return None
    if value.get("score") is None:
        return "rating" if now - value["asked"] <= RATING_WINDOW_S else None
    rated = value.get("rated")
    if value.get("comment") is None and isinstance(rated, (int, float)) and now - rated <= COMMENT_WINDOW_S:
        return "comment"
    return None
