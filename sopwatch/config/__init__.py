"""Loading the admin's files: config, rules, people, calendars, into validated models."""
