"""Editors' accounts: users and roles, sessions, API tokens, login throttling, audit log."""
