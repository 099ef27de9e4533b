"""nutrition_notes_ko.csv: short Korean food-diary notes labelled 1 = high-protein meal, 0 = low-protein meal.

The label is about protein only, not "healthy": a vegetable salad or a fruit bowl is label 0, and both
classes share the same templates, times of day and neutral remarks, so the words "운동" or "샐러드"
alone do not give the answer away.
"""

from __future__ import annotations

import random

from gen_common import rng_for, take_unique

HIGH = [
    "닭가슴살",
    "삶은 달걀 세 개",
    "두부 스테이크",
    "그릭요거트",
    "연어 구이",
    "소고기 안심 스테이크",
    "참치캔",
    "프로틴 쉐이크",
    "고등어 구이",
    "렌틸콩 수프",
    "새우 볶음",
    "돼지 안심 수육",
    "코티지치즈",
    "오징어 볶음",
    "닭가슴살 소시지",
    "훈제 오리",
    "계란 흰자 오믈렛",
    "소고기 장조림",
    "에다마메",
    "닭가슴살 샌드위치",
    "순두부찌개",
    "제육볶음",
    "닭백숙",
    "낫토 두 팩",
    "치킨 샐러드",
]
LOW = [
    "떡볶이",
    "라면",
    "잼 바른 식빵",
    "감자튀김",
    "아이스크림",
    "과일 스무디",
    "초콜릿 케이크",
    "콘플레이크",
    "인절미",
    "바나나 두 개",
    "군고구마",
    "팥빙수",
    "크루아상",
    "잡채",
    "호떡",
    "단호박 찜",
    "채소 샐러드",
    "과일 도시락",
    "컵라면",
    "마카롱",
    "비빔냉면",
    "감자전",
    "우동",
    "카스텔라",
    "꿀떡",
]
SIDES = [
    "현미밥 반 공기",
    "김치",
    "시금치나물",
    "방울토마토",
    "오이",
    "아메리카노",
    "녹차",
    "보리차",
    "양배추 샐러드",
    "미역국",
    "귤 하나",
    "블랙커피",
]
TIMES = ["아침", "점심", "저녁", "야식", "간식", "브런치"]
WHERE = [
    "회사 근처 식당에서",
    "편의점에서 사서",
    "집에서 만들어서",
    "친구랑 카페에서",
    "배달로",
    "구내식당에서",
    "엄마가 싸준 걸로",
    "헬스장 가기 전에",
]
NEUTRAL = [
    "맛있었음.",
    "배가 너무 불렀다.",
    "시간이 없어서 급하게 먹었다.",
    "다음엔 양을 조금 줄여야지.",
    "가족이랑 같이 먹음.",
    "물은 1.5리터 마심.",
    "오늘 만 보 걸었다.",
    "생각보다 짰다.",
    "운동은 쉬는 날.",
    "하체 운동한 날.",
    "잠을 좀 설쳤다.",
    "",
]
HINT = {
    1: ["단백질 목표 채움.", "포만감이 오래 갔다.", "근육 회복에 도움이 될 듯.", "단백질 위주로 잘 챙겼다."],
    0: ["단백질이 너무 부족했다.", "탄수화물 위주였다.", "당이 많아서 좀 걱정.", "금방 다시 배가 고파졌다."],
}
GRAMS = {1: range(24, 48), 0: range(3, 13)}


def _batchim(word: str) -> int:
    """Final consonant index of the last Hangul syllable (0 = none); non-Hangul endings count as none."""
    c = word.strip()[-1]
    return (ord(c) - 0xAC00) % 28 if "가" <= c <= "힣" else 0


def _and(word: str) -> str:  # 과 after a consonant, 와 after a vowel
    return word + ("과" if _batchim(word) else "와")


def _with(word: str) -> str:  # 으로 after a consonant except ㄹ (index 8), else 로
    b = _batchim(word)
    return word + ("으로" if b and b != 8 else "로")


def _along(word: str) -> str:  # 이랑 after a consonant, 랑 after a vowel
    return word + ("이랑" if _batchim(word) else "랑")


def _topic(word: str) -> str:
    return word + ("은" if _batchim(word) else "는")


def _note(label: int, rng: random.Random) -> str:
    foods = HIGH if label else LOW
    a, b = rng.sample(foods, 2)
    side = rng.choice(SIDES)
    t = rng.choice(TIMES)
    g = rng.choice(GRAMS[label])
    remark = rng.choice(HINT[label]) if rng.random() < 0.3 else rng.choice(NEUTRAL)
    templates = [
        f"{_topic(t)} {_and(a)} {side} 먹음. {remark}",
        f"오늘 {t}: {a}, {b}, {side}. {remark}",
        f"{rng.choice(WHERE)} {t} 해결 — {_and(a)} {b}. {remark}",
        f"{_topic(t)} {_with(a)} 간단히. {side}도 조금. {remark}",
        f"식단 기록) {t} {a} + {side}, 단백질 약 {g}g. {remark}",
        f"운동 끝나고 {a} 먹었다. {remark}",
        f"{t} 메뉴 {_and(a)} {b}, 대략 {rng.choice(range(350, 900, 50))}kcal / 단백질 {g}g. {remark}",
        f"바빠서 {_topic(t)} {a + '만' if rng.random() < 0.5 else _along(a) + ' ' + side}. {remark}",
    ]
    return " ".join(rng.choice(templates).split())  # collapse the gap an empty remark leaves


def make_nutrition_notes_ko(n: int = 160) -> list[tuple[str, int]]:
    """Rows (text, label): n // 2 of each label, shuffled, texts unique."""
    rng = rng_for("nutrition_notes_ko")
    seen: set = set()
    rows = []
    for label in (1, 0):
        k = n // 2 if label else n - n // 2
        rows += take_unique(lambda label=label: (_note(label, rng), label), k, keys=lambda r: (r[0],), seen=seen)
    rng.shuffle(rows)
    return rows
