"""The residents' flows, which the API and the pages both call: signing up, proving a
contact point (a code, an e-mail link), the signed links (manage, one-click
unsubscribe), managing subscriptions and preferences, export and erasure; the limits on
what residents can make us send, and the SMS keywords (STOP, START).

Residents have no account: they act through one-time codes and signed links
(`subscribers.links`, `subscribers.notices`).
"""
