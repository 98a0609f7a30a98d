"""Knowledge-tracing data: file formats, student sequences and windows, one DataModule per dataset."""
