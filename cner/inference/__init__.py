"""Using trained models: `Tagger` (NER) and `Classifier`, the documents they read, the files
they write and `annotate_files` (chunked, atomic, resumable annotation)."""
