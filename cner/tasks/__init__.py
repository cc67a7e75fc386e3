"""Tasks on the shared machinery: NER (`ner`) and sentence / pair classification
(`classification`): their data, models, training and evaluation."""
