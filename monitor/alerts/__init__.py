"""What an alert says and when it may go. Pure: the same match always gives the same alerts.

- `plan`: the outbox rows a new match queues (one per channel, keyed by article and channel:
  one message per article and channel, whichever rules match), and the `AlertPlanner` the
  store calls inside a poll's transaction;
- `render`: the words of an alert or a digest, in plain text, Markdown and HTML;
- `escape`: feed text is hostile: cleaning, escaping per format, safe links, trimming;
- `excerpt`: where the matched terms stand in the original text, and a window around them;
- `timing`: retry backoff, quiet hours (across DST changes) and rate limits;
- `held`: which new matches are recorded but not alerted (too old, a first poll's backlog, muted).

No I/O and no wall clock: times come in as arguments, or from the `Clock` a planner is given,
so the outbox can be replayed and every rule tested without waiting. It may import `models`,
`text`, `errors`, `secrets`, the `Clock` protocol and the pure stories core (whether a story's
new article is news); sending is `delivery`'s job, storing the store's.
"""
