"""Fast tests: pure functions and the app in process (Flask test client, SQLite in a temporary folder)."""
