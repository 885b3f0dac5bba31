"""Document sources: code ingestion (``sources.code``) and the offline generators (``sources.bios``)."""
