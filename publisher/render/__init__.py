"""Email rendering: digests and transactional mail, from Jinja and MJML to encoded MIME."""
