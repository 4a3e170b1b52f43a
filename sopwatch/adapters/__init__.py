"""Adapters read and write the outside world: register files, directories, calendars, mail."""
