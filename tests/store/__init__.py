"""The stores on both backends, in process: SQL, change tracking, constraints, identity."""
