"""Review of a recorded session: replay it, and the after-action report.

- ``playback``: ``replay`` re-publishes a session log onto a bus with its timing (0.5x-8x);
- ``session``: ``read_session`` reads a log back into a ``SessionReview`` (turns, decisions,
  affect, events, objectives, latency), also from an old or damaged log;
- ``plots``: the report's figures (matplotlib, inline SVG);
- ``report``: ``render_html``, the self-contained HTML page;
- ``export``: ``to_json`` and ``write_csv`` (turns, affect, events).
"""

from twin.review.playback import MAX_SPEED, MIN_SPEED, check_speed, replay
from twin.review.session import ReviewError, SessionReview, read_session

__all__ = ["MAX_SPEED", "MIN_SPEED", "ReviewError", "SessionReview", "check_speed",
           "read_session", "replay"]
