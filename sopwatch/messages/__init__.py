"""Turning notifications into what people read: subjects, bodies, emails, calendar holds."""
