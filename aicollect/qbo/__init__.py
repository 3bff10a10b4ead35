"""Talking to Intuit: OAuth 2.0 (``oauth``) and the QBO Accounting API. Used only by the
integration process, the sole custodian of Intuit secrets and tokens."""
