"""default_pairs.csv / default_eval.csv: tech-support questions paired with the answer that fixes them.

Questions are colloquial ("laptop wont charge"), answers describe the fix without repeating the
question's words, so matching them means knowing which fix goes with which problem. Eval triplets use
(device, problem) combinations never seen in training, and their negative is the answer to a *neighbouring*
problem on the same device (won't charge vs. won't turn on) 90% of the time, which keeps the base model
below 100%.
"""

from __future__ import annotations

import random

from gen_common import rng_for, take_unique

DEVICES = [
    "laptop",
    "phone",
    "tablet",
    "desktop PC",
    "Chromebook",
    "MacBook",
    "Android phone",
    "iPhone",
    "work laptop",
    "Surface tablet",
]
# problem -> (question phrasings, answer phrasings, neighbouring problems); {d} is the device
PROBLEMS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "no_power": (
        [
            "my {d} won't turn on at all",
            "{d} is dead, nothing happens when I press the power button",
            "{d} stays completely black, no lights",
        ],
        [
            "Leave the {d} on the charger for 30 minutes, then hold the power button for 15 seconds to force a restart.",
            "Plug the {d} in, wait a while, then press and hold the power key until the logo appears; if nothing shows, try another outlet.",
        ],
        ["no_charge", "battery_drain", "black_screen"],
    ),
    "no_charge": (
        [
            "{d} not charging when plugged in",
            "charger connected but the {d} battery is stuck at 0%",
            "why won't my {d} charge anymore",
        ],
        [
            "Try a different cable and wall adapter, and clean lint out of the {d}'s port with a wooden toothpick.",
            "Inspect the port for debris, swap the cable, and check the adapter supplies enough watts for the {d}.",
        ],
        ["no_power", "battery_drain"],
    ),
    "battery_drain": (
        ["{d} battery dies by lunchtime", "battery on my {d} drains super fast", "{d} loses 20% an hour doing nothing"],
        [
            "Open the {d}'s battery usage screen, close the apps using the most power, and lower screen brightness.",
            "Turn on battery saver, stop background refresh for heavy apps, and check the battery health of the {d}.",
        ],
        ["no_charge", "overheating"],
    ),
    "wifi": (
        [
            "{d} keeps dropping off the wifi",
            "wifi disconnects every few minutes on my {d}",
            "{d} says connected but no internet",
        ],
        [
            "Forget the network on the {d}, restart the router, then rejoin and enter the password again.",
            "Reboot the router, forget and re-add the network, and update the {d}'s network drivers.",
        ],
        ["bluetooth", "vpn", "email"],
    ),
    "bluetooth": (
        [
            "{d} won't pair with my headphones",
            "bluetooth on the {d} can't find my speaker",
            "earbuds keep disconnecting from {d}",
        ],
        [
            "Remove the headphones from the {d}'s device list, put them in pairing mode, and pair again.",
            "Toggle Bluetooth off and on, delete the old pairing on the {d}, and hold the earbuds' button until the light flashes.",
        ],
        ["wifi", "no_sound"],
    ),
    "black_screen": (
        [
            "{d} screen flickers and goes black",
            "display on my {d} keeps flickering",
            "{d} screen has weird lines and flashes",
        ],
        [
            "Lower the refresh rate, update the graphics driver, and test the {d} with an external monitor to rule out the panel.",
            "Turn off adaptive brightness, update the display driver, and if it persists the {d}'s panel cable may need service.",
        ],
        ["no_power", "slow"],
    ),
    "overheating": (
        [
            "{d} gets really hot and the fan is loud",
            "{d} overheats when I play videos",
            "my {d} is burning hot on my lap",
        ],
        [
            "Keep the {d}'s vents clear, use it on a hard surface, and blow dust out of the fan with compressed air.",
            "Check for runaway processes, clean the vents, and avoid using the {d} on a bed or cushion.",
        ],
        ["battery_drain", "slow"],
    ),
    "slow": (
        [
            "{d} super slow since the last update",
            "everything lags on my {d} after updating",
            "{d} takes forever to open anything now",
        ],
        [
            "Restart the {d} twice so the update can finish indexing, then disable startup apps and free some disk space.",
            "Let the update's background tasks finish overnight, remove startup programs, and roll the {d} back if it is still sluggish.",
        ],
        ["storage", "crashing", "overheating"],
    ),
    "locked_out": (
        [
            "forgot the passcode for my {d}",
            "locked out of my {d} after too many tries",
            "can't remember my {d} login password",
        ],
        [
            "Use the account recovery page to reset the password, then sign in with the new one on the {d}.",
            "Choose 'Forgot password' on the {d}'s sign-in screen and verify with your recovery email or phone number.",
        ],
        ["email", "vpn"],
    ),
    "storage": (
        ["{d} says storage is almost full", "no space left on my {d}", "can't install anything, {d} storage full"],
        [
            "Delete old downloads and duplicate photos from the {d}, empty the trash, and move large videos to cloud backup.",
            "Open the storage settings on the {d}, offload unused apps, and clear cached files.",
        ],
        ["slow", "crashing"],
    ),
    "no_sound": (
        [
            "no sound coming out of my {d}",
            "{d} speakers stopped working",
            "audio is muted on my {d} even at full volume",
        ],
        [
            "Check the output device in the {d}'s sound settings, unplug any headphones, and restart the audio service.",
            "Make sure the right speaker output is selected, turn off Do Not Disturb, and update the {d}'s audio driver.",
        ],
        ["bluetooth", "camera"],
    ),
    "camera": (
        [
            "camera not working in video calls on my {d}",
            "{d} webcam shows a black box in Zoom",
            "meeting app can't find the {d} camera",
        ],
        [
            "Allow the meeting app in the camera privacy settings, close other apps using it, and restart the {d}.",
            "Grant camera permission to the call app on the {d} and check that no privacy shutter or other app is blocking it.",
        ],
        ["no_sound", "crashing"],
    ),
    "crashing": (
        ["apps keep crashing on my {d}", "browser closes by itself on the {d}", "{d} programs freeze then quit"],
        [
            "Update the apps and the {d}'s system, clear the app cache, and reinstall the one that keeps failing.",
            "Install pending updates, reset the misbehaving app's data, and scan the {d} for corrupted files.",
        ],
        ["slow", "storage"],
    ),
    "touch": (
        ["{d} touchscreen not responding", "keys on my {d} stopped typing", "{d} ignores taps and clicks"],
        [
            "Restart the {d}, remove any screen protector or dirt, and recalibrate input in settings.",
            "Do a forced restart of the {d}, clean the keys or glass, and reinstall the input driver if it still ignores you.",
        ],
        ["black_screen", "crashing"],
    ),
    "email": (
        [
            "email not syncing on my {d}",
            "{d} mail app stopped getting new messages",
            "work emails not showing up on my {d}",
        ],
        [
            "Remove and re-add the mail account on the {d}, check that sync is enabled, and confirm the server password is current.",
            "Refresh the account, turn on background fetch on the {d}, and re-enter your mailbox password.",
        ],
        ["locked_out", "wifi"],
    ),
    "vpn": (
        [
            "{d} won't connect to the company vpn",
            "vpn on my {d} times out",
            "can't reach the office network from my {d}",
        ],
        [
            "Update the VPN client on the {d}, check the date and time are correct, and sign in again with your work account.",
            "Reinstall the VPN profile from IT on the {d}, switch to a different network, and retry with multi-factor approval.",
        ],
        ["wifi", "locked_out"],
    ),
    "printing": (
        ["can't print from my {d}", "printer shows offline on the {d}", "{d} print jobs stuck in queue"],
        [
            "Clear the print queue, restart the printer, and re-add it on the {d} using its IP address.",
            "Make sure the printer and the {d} are on the same network, then remove and add the printer again.",
        ],
        ["wifi", "crashing"],
    ),
}


def _combos(rng: random.Random) -> tuple[list, list]:
    """Shuffle all (device, problem) pairs and hold out a third for eval."""
    combos = [(d, p) for d in DEVICES for p in sorted(PROBLEMS)]
    rng.shuffle(combos)
    k = len(combos) // 3
    return combos[k:], combos[:k]


def _ask(d: str, p: str, rng: random.Random) -> tuple[str, str]:
    qs, ans, _ = PROBLEMS[p]
    return rng.choice(qs).format(d=d), rng.choice(ans).format(d=d)


def _negative(d: str, p: str, rng: random.Random) -> str:
    neighbours = PROBLEMS[p][2] if rng.random() < 0.9 else [q for q in sorted(PROBLEMS) if q != p]
    return rng.choice(PROBLEMS[rng.choice(neighbours)][1]).format(d=d)


def _draw(n_train: int, n_eval: int) -> tuple[list, list, list]:
    """(train rows (anchor, positive, device, problem), eval rows (anchor, positive, negative), train combos)."""
    rng = rng_for("default_pairs")
    train_combos, eval_combos = _combos(rng)
    seen: set = set()

    def train_row() -> tuple[str, str, str, str]:
        d, p = rng.choice(train_combos)
        return (*_ask(d, p, rng), d, p)

    train = take_unique(train_row, n_train, keys=lambda r: r[:2], seen=seen)

    def eval_row() -> tuple[str, str, str]:
        d, p = rng.choice(eval_combos)
        return (*_ask(d, p, rng), _negative(d, p, rng))

    evals = take_unique(eval_row, n_eval, keys=lambda r: r[:2], seen=seen)
    return train, evals, train_combos


def make_default(n_train: int = 200, n_eval: int = 100) -> tuple[list, list]:
    """(train rows (anchor, positive), eval rows (anchor, positive, negative)); no anchor or positive repeats."""
    train, evals, _ = _draw(n_train, n_eval)
    return [row[:2] for row in train], evals


def make_default_triplets(n_train: int = 200, n_eval: int = 100) -> list:
    """The rows of default_pairs.csv, each with a hard negative: the answer to a neighbouring problem on the same
    device 90% of the time, to another problem the rest, drawn as the eval's negatives are, but only from training
    (device, problem) combinations, so that no held-out answer appears in training. Its own RNG: default_pairs.csv
    and default_eval.csv are unchanged."""
    train, _, train_combos = _draw(n_train, n_eval)
    allowed = set(train_combos)
    rng = rng_for("default_triplets")
    rows = []
    for anchor, positive, d, p in train:
        neighbours = PROBLEMS[p][2] if rng.random() < 0.9 else [q for q in sorted(PROBLEMS) if q != p]
        neighbours = [q for q in neighbours if (d, q) in allowed] or [
            q for q in sorted(PROBLEMS) if q != p and (d, q) in allowed
        ]
        rows.append((anchor, positive, rng.choice(PROBLEMS[rng.choice(neighbours)][1]).format(d=d)))
    return rows


def make_default_pair_labels() -> list:
    """(question, answer, label) for a classifier head over the pair: each row of default_triplets.csv once, with
    its own answer (label 1: the answer fixes this problem) or its hard negative (label 0: the answer to another
    problem on the same device), chosen by a fair coin of its own RNG."""
    rng = rng_for("default_pair_labels")
    rows = []
    for anchor, positive, negative in make_default_triplets():
        rows.append((anchor, positive, 1) if rng.random() < 0.5 else (anchor, negative, 0))
    return rows
