"""Email: templates rendered into messages, and SMTP sending over kept connections."""
