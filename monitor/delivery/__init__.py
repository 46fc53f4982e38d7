"""Getting alerts out: the outbox drain and the Apprise adapter.

- `drain`: claims due outbox rows, sends each channel's on its own (one slow channel holds back
  no other), and records every attempt: sent, retried with backoff, or dead;
- `channels`: the Apprise adapter: a channel URL and a rendered message in, a `Delivery` out,
  each body cut to what its service accepts;
- `texts`: alert texts written at send time from what is stored (digests, and story alerts
  that name the outlets which joined after the alert was queued).

Why it sits above `store` and `alerts`: a send is where the two meet. What to say and when is
decided by `alerts` (pure), what is queued and what happened is kept by the store; this layer
does the I/O between them (network, worker threads) and knows neither SQL nor how an alert is
worded. It may import `store`, `alerts`, the pure stories core and the bottom modules (`models`,
`errors`, `secrets`); only `service` and above use it.
"""
