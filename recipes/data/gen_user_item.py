"""user_item.jsonl: a user profile and the catalog item that user engaged with.

Profiles describe demographics plus habits that imply an interest without naming the item; items are
catalog descriptions: a product of that interest and two of its own features. Users and items are unique.
"""

from __future__ import annotations

import random

from gen_common import rng_for, take_unique

# interest -> (habit phrases for the profile, items as "Noun|feature|feature|feature")
INTERESTS: dict[str, tuple[list[str], list[str]]] = {
    "trail running": (
        [
            "runs mountain trails most weekends",
            "is training for a 50 km ultra",
            "logs muddy long runs with a local trail club",
        ],
        [
            "Trail running shoes|rock plate|lugged outsole|4 mm drop",
            "Hydration running vest|two 500 ml soft flasks|12 L capacity|whistle on the sternum strap",
            "Rechargeable headlamp|400 lumens|red night mode|weighs 75 g",
            "Folding running poles|carbon shafts|under 300 g a pair|quick-lock sections",
        ],
    ),
    "road cycling": (
        [
            "commutes 20 km by bike every day",
            "rides group road loops on Sunday mornings",
            "just signed up for a charity century ride",
        ],
        [
            "Clipless road pedals|adjustable float|carbon body|wide platform",
            "Padded bib shorts|chamois for long rides|compressive fabric|reflective trim",
            "GPS bike computer|turn-by-turn navigation|power-meter support|20-hour battery",
            "Aero road helmet|MIPS protection|magnetic buckle|12 vents",
        ],
    ),
    "home baking": (
        [
            "bakes sourdough every weekend",
            "posts cake decorating photos online",
            "keeps a starter named after a grandmother",
        ],
        [
            "Banneton proofing basket|rattan|linen liner|includes a bench scraper",
            "Stand mixer|5 L bowl|dough hook and whisk|dishwasher-safe attachments",
            "Cast iron Dutch oven|enamelled|5.5 L|oven-safe to 260 °C",
            "Digital kitchen scale|0.1 g precision|tare button|baker's percentage mode",
        ],
    ),
    "specialty coffee": (
        [
            "grinds beans fresh every morning",
            "follows third-wave roasters and latte art accounts",
            "dials in espresso shots on weekends",
        ],
        [
            "Burr coffee grinder|40 grind settings|quiet conical burrs|low retention",
            "Gooseneck kettle|temperature hold|1 L|precision pour spout",
            "Single-origin coffee beans|light roast from Ethiopia|roasted this week|250 g",
            "Espresso tamper|58 mm|calibrated spring|stainless steel base",
        ],
    ),
    "indoor plants": (
        [
            "has over forty houseplants in a small flat",
            "propagates pothos cuttings for friends",
            "keeps a humidity log for a fern collection",
        ],
        [
            "Self-watering planter|water-level indicator|25 cm|matte ceramic",
            "Clip-on grow light|full-spectrum LED|timer|three brightness levels",
            "Monstera deliciosa|60 cm tall|with moss pole|in nursery pot",
            "Aroid potting mix|chunky bark and perlite|5 L bag|pet-safe",
        ],
    ),
    "photography": (
        [
            "shoots street photography on weekends",
            "is upgrading from a phone to a mirrorless camera",
            "photographs birds at dawn",
        ],
        [
            "Mirrorless camera body|24 MP full-frame sensor|in-body stabilisation|weather-sealed",
            "Prime lens|35 mm f/1.8|fast autofocus|compact",
            "Carbon fibre tripod|1.2 kg|quick-release plate|folds to 40 cm",
            "Camera sling bag|holds two lenses and a tablet|padded dividers|water-resistant",
        ],
    ),
    "board games": (
        [
            "hosts a board game night every Friday",
            "collects cooperative strategy games",
            "teaches game rules at a local café",
        ],
        [
            "Deck-building game|2–4 players|60-minute sessions|solo mode included",
            "Cooperative campaign game|legacy-style campaign|1–4 players|over 20 scenarios",
            "Game table topper|neoprene surface|folding|seats six",
            "Card sleeves|pack of 100|matte|standard size",
        ],
    ),
    "camping": (
        [
            "spends summer weekends camping by lakes",
            "is planning a first backpacking trip",
            "car-camps with the kids twice a month",
        ],
        [
            "Backpacking tent|2-person|1.4 kg|freestanding",
            "Down sleeping bag|rated to -5 °C|mummy shape|compression sack",
            "Camping stove|boils 1 L in 3 minutes|windproof burner|piezo igniter",
            "Inflatable sleeping pad|R-value 4.2|packs to the size of a water bottle|quiet fabric",
        ],
    ),
    "yoga": (
        [
            "practises vinyasa yoga before work",
            "recently finished a 200-hour teacher training",
            "stretches every evening to ease back pain",
        ],
        [
            "Non-slip yoga mat|6 mm natural rubber|alignment lines|with carry strap",
            "Cork yoga blocks|set of two|rounded edges|sustainably harvested",
            "Yoga strap|organic cotton|2.5 m|metal D-ring",
            "Meditation cushion|buckwheat filling|removable cover|organic cotton",
        ],
    ),
    "PC gaming": (
        [
            "plays competitive shooters most nights",
            "streams strategy games to a small audience",
            "builds and upgrades gaming PCs",
        ],
        [
            "Wireless gaming mouse|26K DPI sensor|under 60 g|70-hour battery",
            "Mechanical keyboard|hot-swappable linear switches|RGB lighting|tenkeyless",
            "Gaming monitor|27-inch|240 Hz|1 ms response",
            "USB streaming microphone|cardioid pickup|mute button|shock mount",
        ],
    ),
    "knitting": (
        ["knits sweaters on the train", "runs a knitting circle at the library", "is learning colourwork patterns"],
        [
            "Merino yarn bundle|hand-dyed|sport weight|five skeins",
            "Interchangeable needle set|bamboo tips|ten sizes in a case|swivel cables",
            "Knitting pattern book|for Fair Isle sweaters|charts and photos|beginner to advanced",
            "Yarn swift|wooden umbrella design|table clamp|folds flat",
        ],
    ),
    "birdwatching": (
        ["keeps a life list of 300 species", "visits wetlands every spring migration", "feeds garden birds year-round"],
        [
            "Binoculars|8x42|waterproof|ED glass",
            "Hanging bird feeder|squirrel-proof|four ports|metal lid",
            "Bird field guide|covers Europe|illustrations of every species|range maps",
            "Spotting scope|angled eyepiece|20–60x zoom|phone adapter included",
        ],
    ),
    "fishing": (
        ["fly-fishes rivers in the early morning", "goes sea fishing with a brother", "ties flies in the winter"],
        [
            "Fly rod|9 ft 5-weight|four pieces|includes travel tube",
            "Fly-tying kit|rotary vise|hooks and feathers|instruction booklet",
            "Chest waders|breathable|stockingfoot|gravel guards",
            "Tackle box|three trays|waterproof seal|carry handle",
        ],
    ),
    "rock climbing": (
        [
            "boulders at the gym three times a week",
            "is learning to lead climb outdoors",
            "travels for sport climbing trips",
        ],
        [
            "Climbing shoes|aggressive downturn|sticky rubber|velcro closure",
            "Chalk bag|brush holder|waist belt|drawstring closure",
            "Climbing harness|four gear loops|adjustable leg loops|lightweight",
            "Bouldering crash pad|folds into a backpack|10 cm foam|carpet landing strip",
        ],
    ),
    "Asian cooking": (
        [
            "cooks Sichuan and Korean dishes at home",
            "is working through a ramen cookbook",
            "shops at the Asian grocery every week",
        ],
        [
            "Carbon steel wok|pre-seasoned|flat-bottomed|wooden handle",
            "Rice cooker|fuzzy logic|10-cup|keep-warm timer",
            "Korean pantry set|gochujang|doenjang|fermented chili flakes",
            "Bamboo steamer|two tiers|25 cm|with lid",
        ],
    ),
    "wine": (
        ["takes wine-tasting classes", "keeps a small cellar of Burgundy", "pairs wines with dinner-party menus"],
        [
            "Wine decanter|lead-free crystal|1.5 L|wide base",
            "Countertop wine fridge|holds 12 bottles|dual temperature zones|UV-protected door",
            "Natural wine subscription|three bottles per month|tasting notes included|small growers",
            "Aerating pourer|no-drip spout|fits any bottle|gift box",
        ],
    ),
    "vinyl records": (
        ["collects jazz records", "digs through crates at flea markets", "is setting up a first hi-fi system"],
        [
            "Belt-drive turntable|built-in phono preamp|aluminium platter|dust cover",
            "Bookshelf speakers|pair|50 W|bass reflex",
            "Record cleaning kit|carbon fibre brush|cleaning fluid|anti-static sleeves",
            "Jazz reissue LP|180 g pressing|remastered from the original tapes|gatefold sleeve",
        ],
    ),
    "science fiction": (
        ["reads two sci-fi novels a month", "belongs to a space opera book club", "rereads classic cyberpunk"],
        [
            "Space opera trilogy box set|paperback|new cover art|over 1,500 pages",
            "E-reader|warm front light|waterproof|32 GB",
            "Hugo-winning novel|hardcover|signed edition|first printing",
            "Short story anthology|classic and new cyberpunk|new translation|paperback",
        ],
    ),
    "language learning": (
        [
            "studies Japanese every evening",
            "is preparing for a Spanish B2 exam",
            "practises German with a tandem partner",
        ],
        [
            "Graded reader series|with audio|beginner to intermediate|six books",
            "Flashcard app subscription|spaced repetition|one year|offline mode",
            "Grammar workbook|answer key|exam-style exercises|B1–B2",
            "Kanji dictionary|stroke order diagrams|2,000 characters|pocket size",
        ],
    ),
    "woodworking": (
        ["builds furniture in a garage workshop", "carves spoons by the fire", "restores old hand planes"],
        [
            "Japanese pull saw|ryoba double edge|replaceable blade|240 mm",
            "Chisel set|four sizes|with leather roll|hardened steel",
            "Workbench vise|quick-release|cast iron|23 cm jaws",
            "Sharpening stones|1000/6000 grit|non-slip base|flattening plate",
        ],
    ),
    "aquariums": (
        ["keeps a planted freshwater aquarium", "breeds shrimp in nano tanks", "is cycling a new reef tank"],
        [
            "Nano aquarium kit|30 L rimless|includes heater|glass lid",
            "Canister filter|quiet 500 L/h|three media baskets|quick-disconnect valves",
            "Aquarium LED light|programmable sunrise|for planted tanks|app control",
            "CO2 diffuser|glass|bubble counter|for planted tanks",
        ],
    ),
    "dog ownership": (
        ["just adopted a puppy", "hikes daily with a border collie", "has an older labrador"],
        [
            "Orthopedic dog bed|memory foam|washable cover|large",
            "No-pull harness|reflective straps|front clip|padded chest",
            "Puzzle feeder|slows fast eaters|non-slip base|dishwasher-safe",
            "Grain-free dog food|salmon recipe|for large breeds|12 kg bag",
        ],
    ),
    "parenting": (
        ["is expecting a first baby in spring", "has twin toddlers", "is a single parent of a newborn"],
        [
            "Baby carrier|ergonomic hip seat|four carry positions|breathable mesh",
            "Convertible car seat|rear- and forward-facing|for newborns to 4 years|ISOFIX",
            "Video baby monitor|night vision|5-inch screen|two-way talk",
            "Bottle sterilizer|steam and dry|holds six bottles|auto shut-off",
        ],
    ),
    "remote work": (
        ["works from home full time", "moved into a tiny flat with no office", "spends most days on video calls"],
        [
            "Standing desk|electric height adjustment|memory presets|120 x 60 cm top",
            "Ergonomic chair|lumbar support|breathable mesh|4D armrests",
            "Webcam|1080p|auto-focus|privacy shutter",
            "Noise-cancelling headset|boom microphone|USB-C|all-day comfort",
        ],
    ),
    "skincare": (
        ["follows a ten-step skincare routine", "has sensitive, acne-prone skin", "checks every ingredient list"],
        [
            "Niacinamide serum|10% concentration|30 ml|non-comedogenic",
            "Mineral sunscreen|SPF 50|no white cast|fragrance-free",
            "Gentle gel cleanser|for sensitive skin|pH-balanced|fragrance-free",
            "Ceramide moisturiser|barrier repair|50 ml|non-comedogenic",
        ],
    ),
    "vegetable gardening": (
        [
            "grows tomatoes on an allotment",
            "keeps raised beds in the back garden",
            "saves seeds from heirloom varieties",
        ],
        [
            "Raised garden bed|galvanised steel|120 x 60 cm|no tools needed",
            "Heirloom seed collection|20 varieties|open-pollinated|organic",
            "Compost bin|330 L|hatch at the base|recycled plastic",
            "Drip irrigation kit|with timer|20 emitters|fits a standard tap",
        ],
    ),
    "skiing": (
        ["spends every February in the Alps", "is learning to ski off-piste", "teaches kids to ski on weekends"],
        [
            "All-mountain skis|95 mm waist|rocker-camber profile|bindings included",
            "Ski goggles|magnetic lens swap|anti-fog|helmet-compatible",
            "Avalanche transceiver|three antennas|multiple-burial mode|one-button search",
            "Heated ski gloves|rechargeable heating|waterproof|three heat levels",
        ],
    ),
    "backpacking travel": (
        [
            "travels with only a carry-on",
            "is planning six months in South America",
            "hops between hostels in Southeast Asia",
        ],
        [
            "Travel backpack|40 L carry-on size|lockable zips|laptop sleeve",
            "Packing cubes|set of four|compression|ultralight nylon",
            "Universal travel adapter|four USB ports|150 countries|fuse-protected",
            "Microfibre towel|quick-dry|large|packs into its own pouch",
        ],
    ),
    "illustration": (
        ["draws daily sketches in ink", "is learning digital painting", "sells prints at weekend markets"],
        [
            "Drawing tablet|pen with 8192 pressure levels|10-inch area|no battery needed",
            "Watercolour set|24 pans|travel tin|water brush included",
            "Sketchbook|A4|cold-pressed paper|lay-flat binding",
            "Fineliner pens|0.05–0.8 mm|archival ink|set of eight",
        ],
    ),
    "smart home": (
        [
            "automates lights and heating with scripts",
            "runs a home server for automations",
            "is retrofitting an old house with sensors",
        ],
        [
            "Smart thermostat|learning schedule|Matter support|energy reports",
            "Zigbee motion sensor|battery lasts two years|works with open-source hubs|magnetic mount",
            "Smart plug|energy monitoring|pack of four|local control",
            "Video doorbell|local storage|no subscription|wide-angle camera",
        ],
    ),
}
JOBS = [
    "nurse",
    "software engineer",
    "teacher",
    "accountant",
    "student",
    "chef",
    "architect",
    "retired engineer",
    "graphic designer",
    "pharmacist",
    "electrician",
    "marketing manager",
    "lawyer",
    "firefighter",
    "barista",
    "data analyst",
    "journalist",
    "physiotherapist",
    "bus driver",
    "researcher",
    "shop owner",
    "dentist",
    "civil servant",
    "musician",
    "logistics coordinator",
]
CITIES = [
    "Leeds",
    "Lyon",
    "Toronto",
    "Melbourne",
    "Austin",
    "Porto",
    "Kraków",
    "Osaka",
    "Dublin",
    "Denver",
    "Cape Town",
    "Glasgow",
    "Seattle",
    "Utrecht",
    "Auckland",
    "Montreal",
    "Bristol",
    "Milan",
    "Oslo",
    "Busan",
]
EXTRAS = [
    "Shops mostly on weekends.",
    "Prefers durable brands over cheap ones.",
    "Budget-conscious.",
    "Reads reviews carefully.",
    "Often buys gifts for family.",
    "Likes eco-friendly packaging.",
    "Usually orders on mobile.",
    "Returns items rarely.",
    "",
]


def _row(rng: random.Random) -> dict[str, str]:
    interest = rng.choice(sorted(INTERESTS))
    habits, items = INTERESTS[interest]
    age, job, city = rng.randrange(19, 72), rng.choice(JOBS), rng.choice(CITIES)
    article = "An" if str(age)[0] == "8" or age in (11, 18) else "A"
    user = f"{article} {age}-year-old {job} in {city} who {rng.choice(habits)}. {rng.choice(EXTRAS)}".strip()
    noun, *features = rng.choice(items).split("|")
    item = f"{noun}: {', '.join(rng.sample(features, 2))}"
    return {"user": user, "item": item}


def make_user_item(n: int = 400) -> list[dict[str, str]]:
    """Rows {"user", "item"}; user profiles and items are each unique."""
    rng = rng_for("user_item")
    return take_unique(lambda: _row(rng), n, keys=lambda r: (r["user"], r["item"]))
