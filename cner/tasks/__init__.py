"""Task pipelines built on the shared training loop (NER; sentiment and GLUE to follow)."""
