"""Helpers the tests share: servers, databases, pull targets, memory figures."""
