"""Development tools standing in for the accounting providers: one emulator per provider
(``emulators.qbo`` for Intuit QuickBooks Online, ``emulators.xero`` for Xero), built on what
they share (``emulators.common``). Tests, benchmarks and ``aicollect run`` use them; the
runtime packages (``aicollect``, ``services``, ``gateway``) never import them and the
production image does not contain them (tests/test_architecture.py)."""
