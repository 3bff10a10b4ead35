"""Matcher service: placements, payment matching, restore, outreach events, reconciliation."""
