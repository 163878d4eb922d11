"""Webhook ingestion gateway for sales outreach (lemlist, Postmark, PhantomBuster)."""

__version__ = "0.1.0"
