"""Contracts every jetpost service shares: events, commands, subjects, settings, NATS helpers."""
