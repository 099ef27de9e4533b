"""product_categories.csv / product_categories_eval.csv: (category, similar product, unrelated product).

A product text is an invented brand, one product noun of the category and one or two attributes. The
"unrelated" product comes from another department 70% of the time and from a sibling category of the same
department 30% of the time (harder: frying pan vs. chef's knife). Train and eval share no product text.
"""

from __future__ import annotations

import random

from gen_common import rng_for, take_unique

# department -> category -> (product nouns, attributes)
TAXONOMY: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "Kitchen": {
        "Frying pans": (
            ["nonstick frying pan", "cast iron skillet", "stainless steel sauté pan", "ceramic omelette pan"],
            ["10-inch|12-inch", "induction-ready", "oven-safe", "with tempered glass lid"],
        ),
        "Chef's knives": (
            ["chef's knife", "santoku knife", "Damascus steel gyuto"],
            ["8-inch", "full-tang", "with ergonomic handle", "high-carbon steel", "with blade guard"],
        ),
        "Coffee makers": (
            ["drip coffee maker", "espresso machine", "pour-over coffee brewer", "French press"],
            ["12-cup", "programmable", "with milk frother", "thermal carafe", "single-serve"],
        ),
        "Blenders": (
            ["countertop blender", "personal smoothie blender", "immersion hand blender"],
            ["1200 W", "with travel cup", "BPA-free", "variable-speed", "ice-crushing"],
        ),
        "Food storage": (
            ["glass meal-prep containers", "stackable pantry canisters", "silicone food bags"],
            ["10-piece", "airtight", "leak-proof", "microwave-safe", "reusable"],
        ),
    },
    "Home": {
        "Bed sheets": (
            ["cotton sheet set", "linen duvet cover", "flannel fitted sheet"],
            ["queen size|king size", "400 thread count", "deep-pocket", "breathable"],
        ),
        "Pillows": (
            ["memory foam pillow", "down alternative pillow", "cervical neck pillow"],
            ["standard size", "cooling gel", "adjustable-loft", "hypoallergenic", "for side sleepers"],
        ),
        "Vacuum cleaners": (
            ["cordless stick vacuum", "robot vacuum", "bagless upright vacuum", "handheld vacuum"],
            ["HEPA-filter", "for pet hair", "lightweight", "with self-emptying base", "60-minute runtime"],
        ),
        "Desk lamps": (
            ["LED desk lamp", "architect lamp", "clip-on reading light"],
            ["dimmable", "with USB charging port", "swing-arm", "eye-care", "with color temperature control"],
        ),
        "Curtains": (
            ["blackout curtains", "sheer voile panels", "thermal insulated drapes"],
            ["2-panel", "84-inch", "grommet-top", "noise-reducing", "machine-washable"],
        ),
    },
    "Electronics": {
        "Headphones": (
            ["over-ear headphones", "wireless earbuds", "on-ear headphones"],
            ["noise-cancelling", "Bluetooth 5.3", "with 30-hour battery", "with built-in mic", "foldable"],
        ),
        "Smartphones": (
            ["Android smartphone", "5G phone", "unlocked smartphone"],
            ["128 GB", "with 6.5-inch OLED display", "triple-camera", "dual-SIM", "fast-charging"],
        ),
        "Laptops": (
            ["ultrabook laptop", "gaming laptop", "2-in-1 convertible laptop", "Chromebook"],
            ["16 GB RAM", "with 512 GB SSD", "14-inch", "with backlit keyboard", "with RTX graphics"],
        ),
        "Computer monitors": (
            ["4K monitor", "curved ultrawide monitor", "portable USB-C monitor"],
            ["27-inch", "144 Hz", "IPS", "with height-adjustable stand", "HDR"],
        ),
        "Phone cases": (
            ["shockproof phone case", "leather wallet case", "clear silicone case"],
            ["MagSafe-compatible", "slim", "drop-tested", "with card slot", "with raised camera lip"],
        ),
        "Power banks": (
            ["portable power bank", "magnetic battery pack", "solar charger"],
            ["20000 mAh", "65 W USB-C", "with built-in cable", "pocket-size", "fast-charging"],
        ),
    },
    "Clothing": {
        "Running shoes": (
            ["road running shoes", "trail running shoes", "lightweight racing flats"],
            ["cushioned", "breathable mesh", "wide-fit", "carbon-plated", "with grippy outsole"],
        ),
        "Winter jackets": (
            ["down puffer jacket", "insulated parka", "softshell jacket"],
            ["hooded", "water-resistant", "packable", "fleece-lined", "windproof"],
        ),
        "Jeans": (
            ["slim-fit jeans", "straight-leg jeans", "high-rise mom jeans"],
            ["stretch denim", "dark wash", "distressed", "30-inch inseam", "organic cotton"],
        ),
        "Dresses": (
            ["wrap dress", "maxi dress", "little black dress"],
            ["floral print", "midi-length", "long-sleeve", "linen", "with pockets"],
        ),
        "Socks": (
            ["merino hiking socks", "ankle athletic socks", "compression socks"],
            ["6-pack", "cushioned", "moisture-wicking", "crew-length", "with seamless toe"],
        ),
    },
    "Beauty": {
        "Moisturizers": (
            ["face moisturizer", "night cream", "gel cream"],
            ["with hyaluronic acid", "SPF 30", "fragrance-free", "for dry skin", "oil-free"],
        ),
        "Shampoo": (
            ["anti-dandruff shampoo", "sulfate-free shampoo", "volumizing shampoo"],
            ["500 ml", "for color-treated hair", "with argan oil", "for oily scalp", "salon-formula"],
        ),
        "Lipstick": (
            ["matte lipstick", "tinted lip balm", "liquid lip gloss"],
            ["long-wearing", "nude shade|classic red", "hydrating", "vegan"],
        ),
        "Electric toothbrushes": (
            ["sonic electric toothbrush", "rotating electric toothbrush", "kids' electric toothbrush"],
            ["with pressure sensor", "with 2-minute timer", "with travel case", "rechargeable", "3-mode"],
        ),
    },
    "Sports & Outdoors": {
        "Yoga mats": (
            ["yoga mat", "exercise mat", "travel yoga mat"],
            ["6 mm thick", "non-slip", "natural rubber", "with carrying strap", "eco-friendly TPE"],
        ),
        "Dumbbells": (
            ["adjustable dumbbells", "neoprene hand weights", "hex dumbbell set"],
            ["5–25 kg", "with rack", "rubber-coated", "quick-select"],
        ),
        "Tents": (
            ["dome tent", "ultralight backpacking tent", "family cabin tent"],
            ["2-person|6-person", "waterproof", "easy-setup", "with vestibule"],
        ),
        "Bicycles": (
            ["road bike", "mountain bike", "folding commuter bike", "e-bike"],
            ["aluminium-frame", "21-speed", "with disc brakes", "700c", "with front suspension"],
        ),
        "Water bottles": (
            ["insulated water bottle", "collapsible bottle", "glass water bottle"],
            ["750 ml", "leak-proof", "with straw lid", "BPA-free", "stainless steel"],
        ),
    },
    "Toys & Baby": {
        "Building toys": (
            ["building brick set", "magnetic tiles", "wooden blocks"],
            ["500-piece", "for ages 6+", "STEM", "with storage box", "creative"],
        ),
        "Board games": (
            ["strategy board game", "family party game", "cooperative card game"],
            ["for 2–4 players", "for ages 10+", "60-minute", "award-winning"],
        ),
        "Strollers": (
            ["lightweight stroller", "jogging stroller", "travel system stroller"],
            ["one-hand-fold", "with reclining seat", "all-terrain", "with canopy", "car-seat-compatible"],
        ),
        "Diapers": (
            ["disposable diapers", "overnight diapers", "swim diapers"],
            ["size 3", "120-count", "hypoallergenic", "with wetness indicator", "plant-based"],
        ),
    },
    "Books": {
        "Cookbooks": (
            ["vegetarian cookbook", "baking cookbook", "30-minute meals cookbook"],
            ["hardcover|paperback", "with 150 recipes", "illustrated", "bestselling", "for beginners"],
        ),
        "Mystery novels": (
            ["crime thriller novel", "cozy mystery novel", "detective series box set"],
            ["paperback|hardcover", "first-in-series", "bestselling", "large-print"],
        ),
        "Children's books": (
            ["picture book", "bedtime story collection", "early reader"],
            ["for ages 3–5", "board-book", "rhyming", "illustrated", "bilingual"],
        ),
    },
    "Grocery": {
        "Coffee beans": (
            ["whole bean coffee", "ground coffee", "decaf coffee beans"],
            ["1 kg", "dark roast|medium roast", "single-origin", "fair-trade"],
        ),
        "Tea": (
            ["loose-leaf green tea", "chamomile tea bags", "English breakfast tea"],
            ["100-count", "organic", "caffeine-free", "in tin", "assorted"],
        ),
        "Breakfast cereal": (
            ["granola", "oat flakes", "high-fiber bran cereal"],
            ["no-added-sugar", "family-size", "with nuts", "gluten-free", "whole-grain"],
        ),
        "Olive oil": (
            ["extra virgin olive oil", "olive oil spray", "infused olive oil"],
            ["1 L", "cold-pressed", "garlic", "from Spain", "in glass bottle"],
        ),
    },
    "Pets": {
        "Dog food": (
            ["dry dog food", "grain-free kibble", "wet dog food"],
            ["for puppies|senior-formula", "for large breeds", "salmon", "12 kg"],
        ),
        "Cat litter": (
            ["clumping cat litter", "silica crystal litter", "pine pellet litter"],
            ["unscented", "10 kg", "low-dust", "odor-control", "biodegradable"],
        ),
        "Cat toys": (
            ["feather wand toy", "catnip mice", "laser chase toy"],
            ["interactive", "3-pack", "with bell", "refillable", "automatic"],
        ),
    },
    "Automotive": {
        "Car phone mounts": (
            ["dashboard phone mount", "air-vent phone holder", "magnetic car mount"],
            ["wireless-charging", "one-hand-release", "360° rotating", "universal", "MagSafe"],
        ),
        "Tires": (
            ["all-season tires", "winter tires", "performance summer tires"],
            ["205/55 R16", "set-of-4", "run-flat", "low-noise", "studless"],
        ),
        "Dash cams": (
            ["dash cam", "front and rear dash cam", "mirror dash cam"],
            ["4K", "with night vision", "with parking mode", "with GPS", "loop-recording"],
        ),
    },
    "Office": {
        "Office chairs": (
            ["ergonomic office chair", "mesh task chair", "gaming chair"],
            ["with lumbar support", "with adjustable armrests", "high-back", "with headrest", "reclining"],
        ),
        "Notebooks": (
            ["dotted notebook", "spiral notebook", "leather journal"],
            ["A5", "200-page", "hardcover", "100 gsm", "3-pack"],
        ),
        "Pens": (
            ["gel pens", "fountain pen", "ballpoint pens"],
            ["0.5 mm", "12-pack", "quick-dry", "refillable", "assorted-color"],
        ),
    },
    "Tools & Garden": {
        "Cordless drills": (
            ["cordless drill driver", "hammer drill", "impact driver"],
            ["18 V", "with 2 batteries", "brushless", "with keyless chuck", "with LED work light"],
        ),
        "Garden hoses": (
            ["expandable garden hose", "rubber garden hose", "hose reel cart"],
            ["30 m", "kink-free", "with spray nozzle", "UV-resistant", "with brass fittings"],
        ),
        "Plant pots": (
            ["ceramic plant pot", "self-watering planter", "hanging basket"],
            ["with drainage hole", "3-piece", "indoor", "20 cm", "with saucer"],
        ),
    },
    "Travel": {
        "Suitcases": (
            ["carry-on suitcase", "hardshell spinner luggage", "checked suitcase"],
            ["55 cm", "with TSA lock", "expandable", "polycarbonate", "with four spinner wheels"],
        ),
        "Backpacks": (
            ["laptop backpack", "hiking daypack", "anti-theft backpack"],
            ["for 15.6-inch laptops", "30 L", "water-resistant", "with USB port", "with padded straps"],
        ),
        "Travel pillows": (
            ["memory foam neck pillow", "inflatable travel pillow", "wrap-around travel pillow"],
            ["with eye mask", "washable-cover", "compact", "with snap strap", "ergonomic"],
        ),
    },
}
BRANDS = [
    "Northwind",
    "Acme",
    "Lumen",
    "Brightline",
    "Kestrel",
    "Oakridge",
    "Vela",
    "Pinecrest",
    "Solis",
    "Harbor & Co.",
    "Tandem",
    "Monarch",
    "Cobalt",
    "Fable",
    "Juniper",
    "Ridgeway",
    "Aster",
    "Quill",
]
POST = ("with ", "for ", "in ", "from ")  # attributes that read after the noun


def _product(dept: str, cat: str, rng: random.Random) -> str:
    nouns, attrs = TAXONOMY[dept][cat]
    # "a|b" marks mutually exclusive values (10-inch vs 12-inch): pick groups, then one value per group
    chosen = [rng.choice(g.split("|")) for g in rng.sample(attrs, k=rng.choice([1, 2]))]
    pre = [a for a in chosen if not a.startswith(POST)]
    post = [a for a in chosen if a.startswith(POST)]
    text = " ".join([rng.choice(BRANDS), *pre, rng.choice(nouns)])
    return " ".join([text, ", ".join(post)]) if post else text


def _anchor(dept: str, cat: str, rng: random.Random) -> str:
    return rng.choice([cat, cat, cat.lower(), f"{dept} > {cat}"])


def _row(rng: random.Random) -> tuple[str, str, str]:
    dept = rng.choice(sorted(TAXONOMY))
    cat = rng.choice(sorted(TAXONOMY[dept]))
    siblings = [c for c in sorted(TAXONOMY[dept]) if c != cat]
    if rng.random() < 0.3:
        other_dept, other = dept, rng.choice(siblings)
    else:
        other_dept = rng.choice([d for d in sorted(TAXONOMY) if d != dept])
        other = rng.choice(sorted(TAXONOMY[other_dept]))
    return _anchor(dept, cat, rng), _product(dept, cat, rng), _product(other_dept, other, rng)


def make_product_categories(n_train: int = 400, n_eval: int = 100) -> tuple[list, list]:
    """(train rows, eval rows) of (category, similar, unrelated); no product text appears twice as `similar`."""
    rng = rng_for("product_categories")
    seen: set = set()
    train = take_unique(lambda: _row(rng), n_train, keys=lambda r: (r[1],), seen=seen)
    evals = take_unique(lambda: _row(rng), n_eval, keys=lambda r: (r[1],), seen=seen)
    return train, evals
