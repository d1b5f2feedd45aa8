"""Real-time plumbing shared by the web app and the worker: envelopes, brokers, presence, rate limits.

This package imports nothing from the rest of the project (STYLE.md C2).
"""
