"""Document sources: code ingestion (:mod:`phicorpus.sources.code`) and offline generators."""
