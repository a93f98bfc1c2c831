"""Alerting on the query side: the evaluator (evaluator*.py) and the notification delivery
layer — `notification` (the value every channel renders), `senders/` (one long-lived sender
per channel: webhook, email, SNS SMS and push, apprise) and `delivery` (every channel of a
receiver, with retries, timeouts and one recorded outcome per attempt).

Nothing is imported here on purpose: importing the package must not pull in the sender
libraries (apprise alone loads hundreds of plugins).
"""
