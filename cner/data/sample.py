"""A deterministic generator of a small synthetic Chinese NER corpus.

Every template, name list and filler below was written for this project; no sentence is
taken from a public corpus.  The generator fills sentence templates with invented person
names, place names (cities, provinces, countries, rivers, mountains, lakes) and
organisation names (companies, universities, ministries, banks, sports clubs, hospitals),
and records each filled entity as a `Span` labelled ``PER``, ``LOC`` or ``ORG``.
Organisation names that contain a place name (``杭州市第一人民医院``) are one ``ORG`` span.
Dates, amounts, percentages, product codes and e-mail addresses are filled into the
non-entity (``O``) context, so digits and Latin letters occur outside entities.

The only source of randomness is ``random.Random(seed)``, so the same seed gives
byte-identical files on every run and platform.

Regenerate the shipped sample with::

    python -m cner.data.sample corpora/sample
"""
from __future__ import annotations

import io
import random
import re
import sys
from collections import Counter
from pathlib import Path

from cner.data.conll import write_conll
from cner.data.example import Example
from cner.schemes import Span

LABELS = ("PER", "LOC", "ORG")
SPLITS = ("train", "dev", "test")

# ---------------------------------------------------------------------------------------
# Name lists (invented for this project)
# ---------------------------------------------------------------------------------------

PERSONS = (
    # two characters
    "周航", "陈曦", "吴迪", "郑屹", "冯蕾", "韩旭", "彭程", "蒋琳", "罗凯", "沈瑶",
    "许诺", "何川", "邓琪", "曹毅", "田甜",
    # three characters
    "张文博", "李思远", "王雨桐", "刘建国", "赵晓峰", "杨慧敏", "黄志强", "林婉清",
    "徐子涵", "马骁腾", "朱海燕", "胡明哲", "郭佳怡", "高振宇", "梁秋实", "宋嘉宁",
    "谢雨辰", "唐立新", "董芳菲", "袁浩然", "萧若兰", "程一鸣", "蔡文卿", "潘昊天",
    "杜雅琴", "叶知秋", "魏东来", "姜海波", "范晓岚", "方明远", "石磊磊", "钟意然",
    "苏沐阳", "卢佳欣", "傅云帆", "贺蓝心", "龚子墨", "孔繁星", "严冬梅", "白景行",
    # compound surnames
    "欧阳明远", "司马青云", "上官婉清", "诸葛文涛", "慕容雪", "东方晓",
)

CITIES = (
    "杭州", "成都", "西安", "哈尔滨", "厦门", "昆明", "兰州", "青岛", "南宁", "武汉",
    "长沙", "苏州", "大连", "贵阳", "拉萨", "乌鲁木齐", "洛阳", "珠海",
)
PROVINCES = (
    "浙江省", "四川", "广东省", "云南", "黑龙江", "河南省", "福建", "甘肃", "江西省", "内蒙古",
)
COUNTRIES = (
    "日本", "德国", "巴西", "肯尼亚", "新加坡", "法国", "埃及", "加拿大", "澳大利亚", "越南",
)
RIVERS = ("长江", "黄河", "珠江", "澜沧江", "嘉陵江", "松花江")
MOUNTAINS = ("泰山", "黄山", "峨眉山", "华山", "武夷山", "长白山")
LAKES = ("洞庭湖", "鄱阳湖", "西湖")

COMPANIES = (
    "星河科技有限公司", "蓝鲸物流集团", "远帆航运股份有限公司", "晨曦乳业", "极光网络科技公司",
    "瑞丰新能源集团", "云栖软件", "华川汽车制造有限公司", "青禾农业发展公司", "鼎信咨询",
    "锦程旅行社", "北辰智能装备公司", "海若生物医药", "千帆电子商务公司", "万象传媒集团",
    "青岛远洋渔业公司",
)
UNIVERSITIES = (
    "江南理工大学", "北方师范大学", "东海海洋大学", "西部财经学院", "中原医科大学",
    "华南艺术学院", "岭北工业大学",
)
MINISTRIES = ("商务部", "教育部", "交通运输部", "国家统计局", "生态环境部", "文化和旅游部")
BANKS = ("丰源银行", "海川商业银行", "长江农商银行", "中原储蓄银行", "汇通银行", "厦门海湾银行")
FOOTBALL_CLUBS = (
    "雄鹰足球俱乐部", "赤焰足球队", "大连海星足球俱乐部", "江城联足球俱乐部", "北岭猎豹足球队",
)
COURT_CLUBS = ("蓝海篮球俱乐部", "天狼星排球俱乐部", "银河篮球队")
CLUBS = FOOTBALL_CLUBS + COURT_CLUBS
# Organisations whose names contain a place name; each is a single ORG entity.
HOSPITALS = (
    "杭州市第一人民医院", "成都市人民医院", "兰州市中心医院", "南宁市妇幼保健院", "长沙市第二医院",
)
INSTITUTES = (
    "青岛市气象台", "云南省博物馆", "武汉光谷产业研究院", "四川省农业科学院", "苏州工业园区管委会",
    "广东省体育局", "西安市图书馆",
)

# slot name -> (label, pool)
_ENTITY_SLOTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PER": ("PER", PERSONS),
    "CITY": ("LOC", CITIES),
    "PROV": ("LOC", PROVINCES),
    "COUNTRY": ("LOC", COUNTRIES),
    "RIVER": ("LOC", RIVERS),
    "MOUNT": ("LOC", MOUNTAINS),
    "LAKE": ("LOC", LAKES),
    "LOC": ("LOC", CITIES + PROVINCES + COUNTRIES),
    "COM": ("ORG", COMPANIES),
    "UNI": ("ORG", UNIVERSITIES),
    "GOV": ("ORG", MINISTRIES),
    "BANK": ("ORG", BANKS),
    "CLUB": ("ORG", CLUBS),
    "FCLUB": ("ORG", FOOTBALL_CLUBS),
    "HOSP": ("ORG", HOSPITALS),
    "ORG": ("ORG", COMPANIES + UNIVERSITIES + MINISTRIES + BANKS + CLUBS + HOSPITALS + INSTITUTES),
}

# ---------------------------------------------------------------------------------------
# Templates (written for this project).  {SLOT} names an entity pool above or one of the
# O-context fillers in `_Filler.fill_plain`.
# ---------------------------------------------------------------------------------------

TEMPLATES = (
    # news
    "{DATE}，{PER}在{CITY}出席了{ORG}举办的年度论坛。",
    "据{ORG}消息，{CITY}今年第一季度接待游客{NUM}万人次。",
    "{GOV}新闻发言人{PER}表示，将加快推进{LOC}与{LOC}之间的合作项目。",
    "记者从{HOSP}获悉，该院新建的住院大楼已于{DATE}投入使用。",
    "{PER}当选为{UNI}新一任校长。",
    "受强降雨影响，{RIVER}部分河段水位持续上涨，{CITY}已启动防汛应急响应。",
    "{PER}在{ORG}主办的研讨会上作了题为“数字经济与区域发展”的报告。",
    "{CITY}警方提醒市民，谨防冒充{BANK}工作人员的电信诈骗。",
    "{COUNTRY}代表团出席了在{CITY}举行的招待会。",
    "{GOV}{DATE}发布通知，要求各地加强对{RIVER}流域生态环境的保护。",
    "气象部门预计，未来三天{PROV}大部分地区将有中到大雨。",
    "{UNI}与{HOSP}联合成立了智能医疗研究中心。",
    "{PER}向{UNI}捐赠了价值{MONEY}的图书和实验设备。",
    "会议决定，下一届博览会将于{YEAR}年在{CITY}举办。",
    # business
    "{COM}{DATE}发布财报，营业收入达到{MONEY}，同比增长{PCT}。",
    "{COM}与{COM}签署战略合作协议，双方将在{CITY}共建研发中心。",
    "{COM}首席执行官{PER}透露，新款{CODE}手机将于{DATE}上市。",
    "{BANK}宣布向{CITY}小微企业提供{MONEY}专项贷款。",
    "据{GOV}统计，{DATE}全国社会消费品零售总额同比增长{PCT}。",
    "{PER}此前在{COM}担任财务总监，负责{LOC}市场的业务拓展。",
    "{COM}在{COUNTRY}设立的第{N}家海外工厂正式投产。",
    "{COM}旗下的{CODE}系列产品在{COUNTRY}市场销量突破{NUM}万台。",
    # travel
    "{PER}一家利用假期自驾游览了{MOUNT}和{LAKE}。",
    "从{CITY}乘坐高铁到{CITY}只需要{HOURS}个小时。",
    "{CITY}的早市上可以买到各种当地特色小吃。",
    "每年春天，大批游客前往{MOUNT}观赏云海和日出。",
    "导游{PER}带领旅行团沿{RIVER}乘船游览了三天。",
    "{COUNTRY}游客{PER}表示，这是自己第一次来到{PROV}。",
    "国庆假期期间，{CITY}各大景区共接待游客{NUM}万人次。",
    # sports
    "在昨晚进行的联赛第{N}轮比赛中，{FCLUB}以{SCORE}战胜{FCLUB}。",
    "{CLUB}主教练{PER}赛后表示，球队的防守还需要加强。",
    "{PER}在{CITY}马拉松比赛中以2小时{MM}分{SS}秒的成绩夺冠。",
    "{COUNTRY}选手{PER}获得跳水十米台金牌。",
    "{FCLUB}宣布与前锋{PER}续约{N}年。",
    "{PER}和{PER}搭档，在混合双打决赛中击败了{COUNTRY}组合。",
    # résumé
    "{PER}，{YEAR}年出生于{CITY}，毕业于{UNI}计算机专业。",
    "{YRANGE}，在{COM}担任高级工程师，主导了{CODE}平台的开发。",
    "{PER}曾在{HOSP}从事临床工作{N}年，后调入{ORG}工作。",
    "联系人：{PER}，电话：{PHONE}，邮箱：{EMAIL}",
    "{PER}获得{UNI}硕士学位后，加入{COM}从事数据分析工作。",
    "工作经历：{DATE}起任{COM}销售经理，常驻{CITY}。",
    # no entities
    "受原材料价格上涨影响，多家企业下调了全年利润预期。",
    "酒店前台提醒住客，退房时间为中午{HOUR}点。",
    "本人熟悉Python和SQL，持有CET-{CET}证书，能够阅读英文技术文档。",
    "本场比赛吸引了超过{NUM}名球迷到现场观战。",
    "请于{DATE}前将申请材料提交至办公室。",
    "今年前{MONTHS}个月，新能源汽车销量同比增长{PCT}。",
)

# Extra templates used only for the unlabelled demo text in news.txt.
_LATIN_LINE = ("{DATE}，{COM}推出兼容iPhone和USB-C接口的{CODE}移动电源，首批{NUM}台售价{PRICE}元，"
               "用户可登录www.example.com预约。")
_FULLWIDTH_LINE = ("记者问：“{CITY}今年的{N}个重点项目（包括{COM}投资的产业园）进展如何？”"
                   "{PER}答：“总体顺利；其中两个已经竣工、三个正在验收！”")

_SLOT = re.compile(r"\{([A-Z0-9]+)\}")
_EMAIL_DOMAINS = ("example.com", "example.cn", "mail.example.org")


class _Filler:
    """Fills templates from one `random.Random`; all draws go through ``self.rng``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def fill_plain(self, slot: str) -> str:
        r = self.rng
        if slot == "DATE":
            kind = r.randrange(3)
            if kind == 0:
                return f"{r.randint(2019, 2025)}年{r.randint(1, 12)}月{r.randint(1, 28)}日"
            if kind == 1:
                return f"{r.randint(2019, 2025)}年{r.randint(1, 12)}月"
            return f"{r.randint(1, 12)}月{r.randint(1, 28)}日"
        if slot == "YEAR":
            return str(r.randint(1975, 2003))
        if slot == "YRANGE":
            start = r.randint(2008, 2020)
            return f"{start}年至{start + r.randint(1, 5)}年"
        if slot == "NUM":
            return str(r.randint(3, 980))
        if slot == "N":
            return str(r.randint(2, 30))
        if slot == "MONEY":
            unit = r.choice(("亿元", "万元", "万美元", "亿元"))
            if r.random() < 0.5:
                return f"{r.randint(1, 99)}.{r.randint(1, 9)}{unit}"
            return f"{r.randint(2, 900)}{unit}"
        if slot == "PCT":
            return f"{r.randint(1, 40)}.{r.randint(0, 9)}%"
        if slot == "CODE":
            letters = "".join(r.choice("ABCDEFGHKMNPRSTVXZ") for _ in range(r.randint(1, 2)))
            suffix = r.choice(("", "", "Pro", "Plus", "S", "Max", "-Lite"))
            return f"{letters}{r.randint(1, 990)}{suffix}"
        if slot == "SCORE":
            a = r.randint(1, 5)
            return f"{a}比{r.randint(0, a - 1)}"
        if slot == "HOURS":
            return r.choice(("1", "1.5", "2", "2.5", "3", "4", "4.5", "6"))
        if slot in ("MM", "SS"):
            return f"{r.randint(5, 59):02d}"
        if slot == "PHONE":
            return r.choice(("138", "139", "150", "186", "177")) + "".join(
                r.choice("0123456789") for _ in range(8))
        if slot == "EMAIL":
            user = "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 7)))
            return f"{user}{r.randint(1, 99)}@{r.choice(_EMAIL_DOMAINS)}"
        if slot == "HOUR":
            return str(r.randint(11, 14))
        if slot == "CET":
            return r.choice(("4", "6"))
        if slot == "MONTHS":
            return str(r.randint(2, 11))
        if slot == "PRICE":
            return str(r.randint(99, 499))
        raise KeyError(f"unknown template slot {{{slot}}}")

    def fill(self, template: str) -> tuple[str, list[Span]]:
        """Return the filled sentence and its entity spans (end exclusive)."""
        parts: list[str] = []
        spans: list[Span] = []
        used: set[str] = set()
        length = 0
        pos = 0
        for match in _SLOT.finditer(template):
            literal = template[pos:match.start()]
            parts.append(literal)
            length += len(literal)
            slot = match.group(1)
            if slot in _ENTITY_SLOTS:
                label, pool = _ENTITY_SLOTS[slot]
                value = self.rng.choice([name for name in pool if name not in used])
                used.add(value)
                spans.append(Span(length, length + len(value), label))
            else:
                value = self.fill_plain(slot)
            parts.append(value)
            length += len(value)
            pos = match.end()
        parts.append(template[pos:])
        text = "".join(parts)
        if any(ch.isspace() for ch in text):
            raise AssertionError(f"whitespace in generated sentence {text!r}")
        return text, spans


def _generate(rng: random.Random, n_sentences: int, seen: set[str]) -> list[tuple[str, list[Span]]]:
    filler = _Filler(rng)
    out: list[tuple[str, list[Span]]] = []
    attempts = 0
    while len(out) < n_sentences:
        attempts += 1
        if attempts > 50 * n_sentences + 1000:
            raise RuntimeError(f"could not generate {n_sentences} distinct sentences")
        text, spans = filler.fill(rng.choice(TEMPLATES))
        if text in seen:
            continue
        seen.add(text)
        out.append((text, spans))
    return out


def generate_sample(seed: int = 13, n_sentences: int = 600) -> list[tuple[str, list[Span]]]:
    """Return ``n_sentences`` distinct synthetic sentences with their entity spans.

    Deterministic: the same ``seed`` and ``n_sentences`` always give the same list.
    """
    if n_sentences < 0:
        raise ValueError("n_sentences must be >= 0")
    return _generate(random.Random(seed), n_sentences, set())


def generate_news(rng: random.Random, seen: set[str], n_lines: int = 30) -> list[str]:
    """Unlabelled demo documents (one per line) drawn from ``rng``, avoiding ``seen``.

    Contains one empty line in the middle, a line with Latin letters and digits, a line
    with full-width punctuation, and one long line (about 700 characters).
    """
    filler = _Filler(rng)

    def sentences(k: int) -> str:
        return "".join(text for text, _ in _generate(rng, k, seen))

    lines = [sentences(rng.randint(1, 3)) for _ in range(n_lines - 4)]
    latin = filler.fill(_LATIN_LINE)[0] + sentences(1)
    fullwidth = filler.fill(_FULLWIDTH_LINE)[0]
    long_parts: list[str] = []
    while sum(map(len, long_parts)) < 680:
        long_parts.append(sentences(1))
    long_line = "".join(long_parts)
    middle = n_lines // 2
    lines[3:3] = [latin]
    lines[8:8] = [fullwidth]
    lines[middle:middle] = [""]
    lines[middle + 6:middle + 6] = [long_line]
    return lines


def split_sample(sentences: list, dev_fraction: float = 0.1, test_fraction: float = 0.1
                 ) -> dict[str, list]:
    """Split in order into train/dev/test (the generator's order is already random)."""
    n = len(sentences)
    n_dev = round(n * dev_fraction)
    n_test = round(n * test_fraction)
    n_train = n - n_dev - n_test
    return {"train": sentences[:n_train], "dev": sentences[n_train:n_train + n_dev],
            "test": sentences[n_train + n_dev:]}


def to_conll(sentences: list[tuple[str, list[Span]]]) -> str:
    """CoNLL column text (`write_conll`): ``char<TAB>tag`` lines, a blank line after each sentence."""
    buffer = io.StringIO()
    write_conll((Example(text, tuple(spans)) for text, spans in sentences), buffer, scheme="bio")
    return buffer.getvalue()


def corpus_stats(sentences: list[tuple[str, list[Span]]]) -> dict[str, int]:
    counts = Counter(span.label for _, spans in sentences for span in spans)
    stats = {"sentences": len(sentences), "characters": sum(len(t) for t, _ in sentences)}
    for label in LABELS:
        stats[label] = counts.get(label, 0)
    return stats


def check_splits(splits: dict[str, list[tuple[str, list[Span]]]]) -> None:
    """Raise `ValueError` if a split is empty or lacks one of PER, LOC, ORG."""
    problems = []
    for name, sentences in splits.items():
        stats = corpus_stats(sentences)
        if not sentences:
            problems.append(f"{name} is empty")
        problems += [f"{name} has no {label}" for label in LABELS if stats[label] == 0]
    if problems:
        raise ValueError("sample corpus check failed: " + "; ".join(problems))


def write_sample_corpus(out_dir, seed: int = 13, n_sentences: int = 600
                        ) -> dict[str, dict[str, int]]:
    """Write ``train.conll``, ``dev.conll``, ``test.conll`` and ``news.txt`` into ``out_dir``.

    Returns the per-split statistics (sentences, characters and entities per label).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seen: set[str] = set()
    sentences = _generate(rng, n_sentences, seen)  # same list as generate_sample(seed, n)
    splits = split_sample(sentences)
    check_splits(splits)
    stats = {}
    for name in SPLITS:
        (out / f"{name}.conll").write_bytes(to_conll(splits[name]).encode("utf-8"))
        stats[name] = corpus_stats(splits[name])
    news = generate_news(rng, seen)
    (out / "news.txt").write_bytes(("\n".join(news) + "\n").encode("utf-8"))
    return stats


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m cner.data.sample OUT_DIR [SEED]", file=sys.stderr)
        return 2
    seed = int(args[1]) if len(args) == 2 else 13
    stats = write_sample_corpus(args[0], seed=seed)
    print(f"{'split':<6} {'sentences':>9} {'chars':>7} " + " ".join(f"{lab:>5}" for lab in LABELS))
    for name, row in stats.items():
        print(f"{name:<6} {row['sentences']:>9} {row['characters']:>7} "
              + " ".join(f"{row[lab]:>5}" for lab in LABELS))
    print(f"wrote {', '.join(f'{n}.conll' for n in SPLITS)}, news.txt to {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
