"""Safeguards: consent, watermark, detection, audit log, protected voices."""
