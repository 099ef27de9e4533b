"""notes_to_prose.csv: terse personal/work notes paired with the full sentence they stand for.

Every slot value is a (note wording, prose wording) pair: abbreviations ("bdgt", "tmrw", "OOO", "3/14")
must map to their spelled-out meaning, which is what a model learns from these pairs.
"""

from __future__ import annotations

import random

from gen_common import rng_for, take_unique

NAMES = [
    "Ana",
    "Ben",
    "Chloé",
    "Dev",
    "Emeka",
    "Farah",
    "Gus",
    "Hana",
    "Ivan",
    "Jin",
    "Kofi",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tomás",
    "Uma",
    "Vik",
    "Wen",
    "Yusuf",
    "Zoe",
]
WEEKDAYS = [("Mon", "Monday"), ("Tue", "Tuesday"), ("Wed", "Wednesday"), ("Thu", "Thursday"), ("Fri", "Friday")]
# (note, bare prose, prose when used as an adverbial of time)
DAYS = [(a, b, f"on {b}") for a, b in WEEKDAYS + [("Sat", "Saturday")]] + [
    ("tmrw", "tomorrow", "tomorrow"),
    ("2day", "today", "today"),
    ("nxt wk", "next week", "next week"),
]
TIMES = [
    ("9a", "9 a.m."),
    ("10:30", "10:30"),
    ("noon", "noon"),
    ("2p", "2 p.m."),
    ("3:30p", "3:30 p.m."),
    ("4p", "4 p.m."),
    ("5p", "5 p.m."),
    ("8a", "8 a.m."),
    ("11a", "11 a.m."),
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
TOPICS = [
    ("Q3 bdgt", "the third-quarter budget"),
    ("hiring plan", "the hiring plan"),
    ("mktg deck", "the marketing deck"),
    ("vendor contract", "the vendor contract"),
    ("perf reviews", "the performance reviews"),
    ("prod launch", "the product launch"),
    ("Q4 roadmap", "the fourth-quarter roadmap"),
    ("offsite", "the offsite"),
    ("sec audit", "the security audit"),
    ("cust churn", "customer churn"),
    ("API migr.", "the API migration"),
    ("board mtg prep", "preparation for the board meeting"),
    ("SLA breach", "the SLA breach"),
    ("intern proj", "the intern project"),
    ("exp reports", "the expense reports"),
]
NUM = ["zero", "one", "two", "three", "four"]


def _date(rng: random.Random) -> tuple[str, str]:
    m, d = rng.randrange(1, 13), rng.randrange(1, 29)
    return f"{m}/{d}", f"{MONTHS[m - 1]} {d}"


def _p(rng: random.Random, pairs: list) -> tuple:
    return rng.choice(pairs)


def meeting_moved(r):
    n, (t, T), (d, D, _) = r.choice(NAMES), _p(r, TOPICS), _p(r, DAYS)
    return f"mtg w/ {n} re {t}, moved to {d}", f"The meeting with {n} about {T} was moved to {D}."


def call_before(r):
    n, (t, T), (h, H) = r.choice(NAMES), _p(r, TOPICS), _p(r, TIMES)
    return f"call {n} abt {t} b4 {h}", f"Call {n} about {T} before {H}."


def out_of_office(r):
    n, n2 = r.sample(NAMES, 2)
    i = r.randrange(len(WEEKDAYS) - 1)
    j = r.randrange(i + 1, len(WEEKDAYS))
    (d1, D1), (d2, D2) = WEEKDAYS[i], WEEKDAYS[j]
    return f"{n} OOO {d1}-{d2}, {n2} covering", f"{n} is out of the office from {D1} to {D2}, and {n2} is covering."


def pick_up(r):
    (i, I), (p, P) = _p(
        r,
        [
            (("dry cleaning", "the dry cleaning"), ("cleaners", "the cleaners")),
            (("meds", "the prescription"), ("pharm", "the pharmacy")),
            (("pkg", "the package"), ("post office", "the post office")),
            (("kids", "the kids"), ("school", "school")),
            (("bday cake", "the birthday cake"), ("bakery", "the bakery")),
            (("spare keys", "the spare keys"), ("front desk", "the front desk")),
            (("glasses", "the new glasses"), ("optician", "the optician")),
        ],
    )
    when, When = _p(r, [("after wk", "after work"), ("at lunch", "at lunchtime"), ("b4 5", "before five")])
    return f"pick up {i} @ {p} {when}", f"Pick up {I} at {P} {When}."


def appointment(r):
    (a, A), (d, _, W), (h, H) = (
        _p(
            r,
            [
                ("dr", "doctor's"),
                ("dentist", "dentist"),
                ("eye dr", "eye doctor"),
                ("vet", "vet"),
                ("physio", "physiotherapy"),
            ],
        ),
        _p(r, DAYS),
        _p(r, TIMES),
    )
    b, B = _p(
        r,
        [
            ("ins card", "the insurance card"),
            ("ID", "your ID"),
            ("test results", "the test results"),
            ("referral", "the referral letter"),
        ],
    )
    return f"{a} appt {d} {h}, bring {b}", f"The {A} appointment is {W} at {H}; bring {B}."


def birthday(r):
    n, (d, D) = r.choice(NAMES), _date(r)
    o, O = _p(r, [("cake", "a cake"), ("flowers", "flowers"), ("card", "a card"), ("gift", "a gift")])
    return f"{n} bday {d} - order {o}", f"{n}'s birthday is on {D}, so order {O}."


def pay_bill(r):
    (b, B), (d, D) = (
        _p(
            r,
            [
                ("elec bill", "electricity bill"),
                ("rent", "rent"),
                ("water bill", "water bill"),
                ("phone bill", "phone bill"),
                ("cc", "credit card bill"),
                ("car ins", "car insurance"),
                ("gym fee", "gym membership fee"),
            ],
        ),
        _date(r),
    )
    amt = r.randrange(30, 1500, 5)
    return f"pay {b} by {d}, ~${amt}", f"Pay the {B} of about ${amt} by {D}."


def flight(r):
    c, (d, _, W), (h, H), k = (
        r.choice(["Lisbon", "Osaka", "Denver", "Nairobi", "Oslo", "Lima", "Seoul", "Dubai"]),
        _p(r, DAYS),
        _p(r, TIMES),
        r.randrange(1, 4),
    )
    return (
        f"flight to {c} {d} {h}, chk in {k}h early",
        f"The flight to {c} leaves {W} at {H}; check in {NUM[k]} hour{'s' if k > 1 else ''} early.",
    )


def fix_bug(r):
    (b, B), (c, C) = (
        _p(
            r,
            [
                ("login bug", "login bug"),
                ("mem leak", "memory leak"),
                ("race cond.", "race condition"),
                ("tz bug", "time-zone bug"),
                ("null ptr crash", "null-pointer crash"),
                ("perf regression", "performance regression"),
            ],
        ),
        _p(
            r,
            [
                ("auth svc", "authentication service"),
                ("checkout pg", "checkout page"),
                ("iOS app", "iOS app"),
                ("sync job", "sync job"),
                ("search API", "search API"),
                ("billing cron", "billing cron job"),
            ],
        ),
    )
    v, V = _p(
        r,
        [
            ("v2.3 release", "version 2.3 release"),
            ("Fri deploy", "Friday deploy"),
            ("beta", "beta"),
            ("client demo", "client demo"),
        ],
    )
    return f"fix {b} in {c} asap - blocks {v}", f"Fix the {B} in the {C} as soon as possible because it blocks the {V}."


def remind(r):
    n, (t, T), (d, _, W) = (
        r.choice(NAMES),
        _p(
            r,
            [
                ("timesheet", "the timesheet"),
                ("exp rpt", "the expense report"),
                ("draft", "the draft"),
                ("visa form", "the visa form"),
                ("grant app", "the grant application"),
                ("lit review", "the literature review"),
            ],
        ),
        _p(r, DAYS),
    )
    return f"remind {n}: {t} due {d}", f"Remind {n} that {T} is due {W}."


def lunch(r):
    n, (p, P), (d, _, W), (h, H) = (
        r.choice(NAMES),
        _p(
            r,
            [
                ("Thai place", "the Thai place"),
                ("cafe on 5th", "the café on Fifth Street"),
                ("cafeteria", "the cafeteria"),
                ("Luigi's", "Luigi's"),
            ],
        ),
        _p(r, DAYS),
        _p(r, TIMES[1:4] + TIMES[-1:]),
    )
    return f"lunch w/ {n} @ {p} {d} {h}", f"Have lunch with {n} at {P} {W} at {H}."


def pull_request(r):
    n, k = r.choice(NAMES), r.randrange(100, 2000)
    return (
        f"PR #{k} needs review from {n} b4 merge",
        f"Pull request {k} needs a review from {n} before it can be merged.",
    )


def interview(r):
    (o, O), (d, _, W), (h, H), room = (
        _p(
            r,
            [
                ("sr BE eng", "senior back-end engineer"),
                ("PM", "product manager"),
                ("UX", "UX designer"),
                ("data sci", "data scientist"),
                ("QA", "QA engineer"),
                ("jr FE dev", "junior front-end developer"),
            ],
        ),
        _p(r, DAYS),
        _p(r, TIMES),
        r.choice(["4B", "210", "12", "3A", "Atlas", "Orion"]),
    )
    return (
        f"interview {o} cand. {d} {h}, rm {room}",
        f"There is an interview with a {O} candidate {W} at {H} in room {room}.",
    )


def car_service(r):
    (d, D) = _date(r)
    (a, A), (b, B) = r.sample(
        [
            ("oil chg", "an oil change"),
            ("tire rot.", "a tire rotation"),
            ("brake chk", "a brake check"),
            ("AC recharge", "an air-conditioning recharge"),
            ("insp.", "an inspection"),
        ],
        2,
    )
    return f"car svc {d}: {a} + {b}", f"The car is booked for service on {D} for {A} and {B}."


def gym(r):
    n, (d, _, W), (h, H), (w, Wk) = (
        r.choice(NAMES),
        _p(r, DAYS),
        _p(r, TIMES),
        _p(
            r,
            [
                ("leg day", "leg day"),
                ("cardio", "a cardio day"),
                ("upper body", "an upper-body day"),
                ("yoga", "a yoga session"),
            ],
        ),
    )
    return f"gym {d} {h} w/ {n}, {w}", f"Go to the gym with {n} {W} at {H}; it is {Wk}."


def order_supplies(r):
    (i, I), (e, E), k, amt = (
        _p(
            r,
            [
                ("pizzas", "pizzas"),
                ("chairs", "chairs"),
                ("tshirts", "T-shirts"),
                ("laptops", "laptops"),
                ("name badges", "name badges"),
            ],
        ),
        _p(
            r,
            [
                ("team offsite", "team offsite"),
                ("hackathon", "hackathon"),
                ("all-hands", "all-hands meeting"),
                ("open day", "open day"),
                ("wkshop", "workshop"),
            ],
        ),
        r.randrange(5, 60),
        r.randrange(100, 5000, 50),
    )
    return f"order {k} {i} for {e}, bdgt ${amt}", f"Order {k} {I} for the {E} with a budget of ${amt}."


def sick(r):
    n, (d, _, W) = r.choice(NAMES), _p(r, DAYS)
    d2, D2, _ = _p(r, [x for x in DAYS if x[0] != d])
    return f"{n} sick {d}, resched 1:1 to {d2}", f"{n} is sick {W}, so reschedule the one-on-one to {D2}."


def groceries(r):
    items = r.sample(
        [
            ("eggs", "eggs"),
            ("oat milk", "oat milk"),
            ("bread", "bread"),
            ("bananas", "bananas"),
            ("chx", "chicken"),
            ("OJ", "orange juice"),
            ("TP", "toilet paper"),
            ("coffee", "coffee"),
            ("rice", "rice"),
            ("tomatoes", "tomatoes"),
            ("veg", "vegetables"),
            ("yogurt", "yogurt"),
        ],
        3,
    )
    (a, A), (b, B), (c, C) = items
    return f"grocery: {a}, {b}, {c}", f"Buy {A}, {B}, and {C} from the grocery store."


def standup(r):
    n, n2 = r.sample(NAMES, 2)
    d, _, W = _p(r, DAYS)
    return (
        f"{n} & {n2} can't make {d} standup, async update in Slack",
        f"{n} and {n2} cannot attend the stand-up {W}, so they will post an update in Slack instead.",
    )


def renew(r):
    (t, T), (d, D) = (
        _p(
            r,
            [
                ("passport", "the passport"),
                ("driver's lic", "the driver's license"),
                ("lib card", "the library card"),
                ("domain", "the domain name"),
                ("SSL cert", "the SSL certificate"),
                ("parking permit", "the parking permit"),
            ],
        ),
        _date(r),
    )
    return f"renew {t} by {d}", f"Renew {T} by {D}."


TEMPLATES = [
    meeting_moved,
    call_before,
    out_of_office,
    pick_up,
    appointment,
    birthday,
    pay_bill,
    flight,
    fix_bug,
    remind,
    lunch,
    pull_request,
    interview,
    car_service,
    gym,
    order_supplies,
    sick,
    groceries,
    standup,
    renew,
]


def make_notes_to_prose(n: int = 263) -> list[tuple[str, str]]:
    """Rows (note, sentence); every note and every sentence is unique."""
    rng = rng_for("notes_to_prose")

    def draw() -> tuple[str, str]:
        note, sentence = rng.choice(TEMPLATES)(rng)
        return note, sentence.replace("..", ".")  # "a.m." at the end of a sentence takes no extra period

    return take_unique(draw, n, keys=lambda r: r)
