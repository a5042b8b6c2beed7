"""The public web app: feeds, article pages and (from subscribers) the subscription flow."""
