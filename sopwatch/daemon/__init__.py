"""The daemon: one tick wires the pure core to files, SQLite, templates and the mail transport."""
