"""Delivery: editions, the outbox, the SMTP pool, workers and the dev mail sink."""
