"""list, summary, validate: placeholder filled in below."""
