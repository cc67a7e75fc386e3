"""Text -> model inputs, one position per character.

``vocab`` (the character vocabulary and its normalisation), ``windows`` (overlapping windows
over long texts and merging them back), ``features`` (character, bigram, word-boundary and
lexicon ids), ``lexicon`` (jieba dictionary marks), ``batching`` (padding windows into
tensors, length-bucketed training batches, cost-planned inference batches) and
``classification`` (single texts and sentence pairs for classifiers).
"""
