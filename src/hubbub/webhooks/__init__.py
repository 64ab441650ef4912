"""Webhooks (API.md "Webhooks"): every stored room change POSTed to one URL, signed, at least
once, in order per room. The change log is the outbox (a change and its log row commit in one
transaction), so all this package adds is a durable cursor into it and the loop that delivers
past the cursor. See ``docs/webhooks.md``."""
