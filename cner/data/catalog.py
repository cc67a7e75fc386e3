"""The public corpora cner knows: where they come from and how to read them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublicCorpus:
    name: str
    task: str
    format: str
    files: tuple[str, ...]
    source: str
    note: str


PUBLIC_CORPORA: tuple[PublicCorpus, ...] = (
    PublicCorpus("msra_ner", "NER: PER LOC ORG", "conll (char<TAB>tag, BIO)",
                 ("msra_train_bio", "msra_test_bio"),
                 "SIGHAN 2006 bakeoff, MSRA track (mirrored in many GitHub repositories)",
                 "45,000 train / 3,442 test sentences; no dev split, hold out part of train"),
    PublicCorpus("peoples_daily_ner", "NER: PER LOC ORG", "conll (char<SPACE>tag, BIO)",
                 ("example.train", "example.dev", "example.test"),
                 "github.com/zjy-ucas/ChineseNER (People's Daily 1998, PKU annotation)",
                 "20,864 / 2,318 / 4,636 sentences"),
    PublicCorpus("cluener2020", "NER: 10 fine-grained types", "cluener (JSON lines, end inclusive)",
                 ("train.json", "dev.json", "test.json"),
                 "github.com/CLUEbenchmark/CLUENER2020 (cluener_public.zip)",
                 "10,748 / 1,343 / 1,345 rows; test unlabelled; one train line has nested spans"),
)
